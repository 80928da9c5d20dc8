package doctor

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keystone-edge/keystone/agent/config"
)

// Status is a check's verdict.
type Status string

// The verdicts, from best to worst; skip means the check could not apply.
const (
	OK   Status = "ok"
	Skip Status = "skip"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Check is one check's result.
type Check struct {
	Name    string `json:"name"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"` // what to do; "" when all is well
}

// Env is the machine the checks look at. The zero value is this machine.
type Env struct {
	// Root is the root folder the configuration and every path in it are
	// read under; "" = "/".
	Root string
	// Host says whether Root is this running machine: the cgroup and
	// systemd checks apply only then. Run sets it for Root "/" when
	// HostSet is false.
	Host, HostSet bool
	// CgroupFS is where the cgroup file systems are mounted; "" =
	// /sys/fs/cgroup.
	CgroupFS string
	// Now is the clock; nil = time.Now.
	Now func() time.Time
	// Statfs reports the bytes available to unprivileged users and the
	// total size of the file system holding path; nil = statfs(2).
	Statfs func(path string) (avail, total uint64, err error)
	// LookPath finds a program; nil = exec.LookPath.
	LookPath func(string) (string, error)
	// Systemctl runs systemctl with args and returns its output; nil runs
	// the program LookPath found.
	Systemctl func(ctx context.Context, args ...string) (string, error)
	// Timeout bounds the network checks; 0 = 15s each.
	Timeout time.Duration
}

func (e *Env) fill() {
	if e.Root == "" {
		e.Root = "/"
	}
	if !e.HostSet {
		e.Host = filepath.Clean(e.Root) == "/"
	}
	if e.CgroupFS == "" {
		e.CgroupFS = "/sys/fs/cgroup"
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	if e.Statfs == nil {
		e.Statfs = statfs
	}
	if e.LookPath == nil {
		e.LookPath = exec.LookPath
	}
	if e.Timeout == 0 {
		e.Timeout = 15 * time.Second
	}
}

// path is a path of the device as found under Root.
func (e *Env) path(p string) string {
	if p == "" || !filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(e.Root, p)
}

func statfs(path string) (avail, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, 0, err
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}

// Run reads the agent configuration at configPath (a path on the device,
// read under env.Root) and runs every check. It never fails as a whole:
// a configuration that does not load is the first check's failure, and
// the checks that need it are skipped.
func Run(ctx context.Context, configPath string, env Env) []Check {
	env.fill()
	d := &run{env: env}
	cfg := d.config(configPath)
	d.cgroups()
	if cfg == nil {
		for _, name := range []string{"account", "permissions", "clock", "disk", "broker", "repository", "trust"} {
			d.add(name, Skip, "needs the configuration", "")
		}
		d.systemd(ctx)
		return d.checks
	}
	d.cfg = cfg
	d.account()
	d.permissions()
	d.clock()
	d.disk()
	d.broker(ctx)
	d.repository(ctx)
	d.trust()
	d.systemd(ctx)
	return d.checks
}

// Failed reports whether any check failed.
func Failed(checks []Check) bool {
	for _, c := range checks {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

// run is one doctor run: its environment, the configuration and the
// results so far.
type run struct {
	env    Env
	cfg    *config.Config
	checks []Check
}

func (d *run) add(name string, s Status, msg, fix string) {
	d.checks = append(d.checks, Check{Name: name, Status: s, Message: msg, Fix: fix})
}

func (d *run) config(configPath string) *config.Config {
	abs := configPath
	if !filepath.IsAbs(abs) && d.env.Root == "/" {
		abs, _ = filepath.Abs(configPath)
	}
	data, err := os.ReadFile(d.env.path(abs))
	if err != nil {
		d.add("config", Fail, err.Error(), "write the agent's configuration there (keystonectl device provision), or name it with --config")
		return nil
	}
	// Parsed under its device path: relative paths become device paths,
	// found under Root like every other.
	cfg, err := config.Parse(abs, data)
	if err != nil {
		d.add("config", Fail, err.Error(), "correct agent.toml (keystone-agent config check lists every problem)")
		return nil
	}
	d.add("config", OK, abs+" loads", "")
	return cfg
}
