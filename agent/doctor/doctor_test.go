package doctor

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/agent/provision"
	"github.com/keystone-edge/keystone/comms/pki"
	"github.com/keystone-edge/keystone/internal/mqtttest"
	"github.com/keystone-edge/keystone/ota/sign"
	"github.com/keystone-edge/keystone/ota/tufrepo"
)

// device is a provisioned image root with everything it needs running: a
// real broker on the device's CA, a TUF repository over https, and a
// cgroup file system and systemctl made for the test.
type device struct {
	root, cgroupFS string
	ca             *pki.CA
	repo           *httptest.Server
	env            Env
}

func newDevice(t *testing.T) *device {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED, NOT PASSED: provisioning sets file owners, which needs root; run the tests as root")
	}
	d := &device{root: t.TempDir(), cgroupFS: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(d.root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(d.root, "etc", "passwd"), "root:x:0:0::/root:/bin/sh\nkeystone:x:4321:4322::/var/lib/keystone:/usr/sbin/nologin\n", 0o644)
	writeFile(t, filepath.Join(d.root, "etc", "group"), "root:x:0:\nkeystone:x:4322:\n", 0o644)
	writeFile(t, filepath.Join(d.cgroupFS, "cgroup.controllers"), "cpuset cpu io memory hugetlb pids\n", 0o444)

	var err error
	if d.ca, err = pki.Init(filepath.Join(t.TempDir(), "ca"), pki.InitOptions{BrokerNames: []string{"127.0.0.1", "localhost", "::1"}}); err != nil {
		t.Fatal(err)
	}
	srv, err := d.ca.Issue(pki.Request{Kind: pki.Server, Name: "127.0.0.1", Hosts: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "broker.pem"), string(srv.CertPEM), 0o644)
	writeFile(t, filepath.Join(dir, "broker.key"), string(srv.KeyPEM), 0o600)
	b := mqtttest.Start(t, mqtttest.Options{
		CA:             mqtttest.LoadCA(t, "device-ca", filepath.Join(d.ca.Dir, pki.CACertFile), filepath.Join(d.ca.Dir, pki.CAKeyFile)),
		ServerCertFile: filepath.Join(dir, "broker.pem"), ServerKeyFile: filepath.Join(dir, "broker.key")})

	repoDir := t.TempDir()
	if err := tufrepo.Init(repoDir, tufrepo.Options{}); err != nil {
		t.Fatal(err)
	}
	d.repo = httptest.NewTLSServer(http.FileServer(http.Dir(tufrepo.ServedDir(repoDir))))
	t.Cleanup(d.repo.Close)
	repoCA := filepath.Join(dir, "repo-ca.pem")
	writeFile(t, repoCA, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d.repo.Certificate().Raw})), 0o644)

	pub, priv, err := sign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, opsPub, err := sign.WriteKeyPair(filepath.Join(dir, "ops"), pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	off := ""
	if _, err := provision.Provision(provision.Options{Root: d.root, DeviceID: "pos-12", Groups: []string{"kyiv"},
		Broker: b.URL, BrokerCA: filepath.Join(d.ca.Dir, pki.CACertFile), CA: d.ca,
		Repository: d.repo.URL + "/", TUFRoot: tufrepo.RootFile(repoDir), RepositoryCA: repoCA,
		TrustKeys: []string{opsPub}, HTTPListen: &off}); err != nil {
		t.Fatal(err)
	}
	d.env = Env{Root: d.root, Host: true, HostSet: true, CgroupFS: d.cgroupFS, Timeout: 10 * time.Second,
		Systemctl: fakeSystemctl("active", "enabled")}
	return d
}

func fakeSystemctl(active, enabled string) func(context.Context, ...string) (string, error) {
	return func(_ context.Context, args ...string) (string, error) {
		if args[0] == "is-active" {
			return active, nil
		}
		return enabled, nil
	}
}

func writeFile(t *testing.T, path, text string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
}

func (d *device) run(t *testing.T) map[string]Check {
	t.Helper()
	checks := Run(context.Background(), provision.ConfigFile, d.env)
	out := map[string]Check{}
	for _, c := range checks {
		t.Logf("%-11s %-4s %s | fix: %s", c.Name, c.Status, c.Message, c.Fix)
		out[c.Name] = c
	}
	return out
}

// want checks one check's verdict and that its message says what is
// wrong; a failing check must say what to do.
func want(t *testing.T, checks map[string]Check, name string, s Status, says string) {
	t.Helper()
	c, ok := checks[name]
	if !ok {
		t.Errorf("no %s check", name)
		return
	}
	if c.Status != s || !strings.Contains(c.Message, says) {
		t.Errorf("%s: %s %q; want %s saying %q", name, c.Status, c.Message, s, says)
	}
	if s == Fail && c.Fix == "" {
		t.Errorf("%s fails without a fix", name)
	}
}

func (d *device) in(p string) string { return filepath.Join(d.root, p) }

// A healthy provisioned device passes every check.
func TestHealthyDevice(t *testing.T) {
	d := newDevice(t)
	checks := d.run(t)
	for _, name := range []string{"config", "cgroups", "account", "permissions", "clock", "disk", "broker", "repository", "trust", "systemd"} {
		want(t, checks, name, OK, "")
	}
	if len(checks) != 10 {
		t.Errorf("%d checks, want 10", len(checks))
	}
}

// Each broken condition fails its check, saying what is wrong, and leaves
// the others alone.
func TestBrokenConditions(t *testing.T) {
	d := newDevice(t)
	restore := func(path string) func() {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		info, _ := os.Stat(path)
		return func() {
			if err := os.WriteFile(path, data, info.Mode().Perm()); err != nil {
				t.Fatal(err)
			}
			_ = os.Chmod(path, info.Mode().Perm())
		}
	}

	t.Run("no cgroup controller delegated", func(t *testing.T) {
		undo := restore(filepath.Join(d.cgroupFS, "cgroup.controllers"))
		defer undo()
		writeFile(t, filepath.Join(d.cgroupFS, "cgroup.controllers"), "cpuset io\n", 0o444)
		c := d.run(t)
		want(t, c, "cgroups", Fail, "cpu, memory, pids controller(s) are not delegated")
		want(t, c, "broker", OK, "")
	})
	t.Run("no cgroup file system", func(t *testing.T) {
		env := d.env
		d.env.CgroupFS = t.TempDir()
		defer func() { d.env = env }()
		want(t, d.run(t), "cgroups", Fail, "no cgroup file system")
	})
	t.Run("hybrid with controllers", func(t *testing.T) {
		fs := t.TempDir()
		for _, sub := range []string{"cpu", "memory", "pids", "unified"} {
			if err := os.MkdirAll(filepath.Join(fs, sub), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(fs, sub, "cgroup.procs"), "", 0o644)
		}
		env := d.env
		d.env.CgroupFS = fs
		defer func() { d.env = env }()
		want(t, d.run(t), "cgroups", OK, "hybrid")
	})
	t.Run("key readable by others", func(t *testing.T) {
		key := d.in(provision.KeyFile)
		if err := os.Chmod(key, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(key, 0o600)
		want(t, d.run(t), "permissions", Fail, "mode 0644")
	})
	t.Run("clock before the certificate", func(t *testing.T) {
		cert, err := pki.LoadCertificate(d.in(provision.CertFile))
		if err != nil {
			t.Fatal(err)
		}
		env := d.env
		d.env.Now = func() time.Time { return cert.NotBefore.Add(-24 * time.Hour) }
		defer func() { d.env = env }()
		want(t, d.run(t), "clock", Fail, "before the device certificate is valid")
	})
	t.Run("certificate about to end", func(t *testing.T) {
		cert, err := pki.LoadCertificate(d.in(provision.CertFile))
		if err != nil {
			t.Fatal(err)
		}
		env := d.env
		d.env.Now = func() time.Time { return cert.NotAfter.Add(-72 * time.Hour) }
		defer func() { d.env = env }()
		want(t, d.run(t), "clock", Warn, "in 3 days")
	})
	t.Run("broker CA mismatch", func(t *testing.T) {
		defer restore(d.in(provision.BrokerCAFile))()
		other, err := pki.Init(filepath.Join(t.TempDir(), "other"), pki.InitOptions{BrokerNames: []string{"127.0.0.1"}})
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, d.in(provision.BrokerCAFile), string(other.CertPEM), 0o644)
		want(t, d.run(t), "broker", Fail, "(tls): the broker's certificate does not chain to ca_file")
	})
	t.Run("broker refuses the certificate", func(t *testing.T) {
		defer restore(d.in(provision.CertFile))()
		defer restore(d.in(provision.KeyFile))()
		other, err := pki.Init(filepath.Join(t.TempDir(), "other"), pki.InitOptions{BrokerNames: []string{"127.0.0.1"}})
		if err != nil {
			t.Fatal(err)
		}
		id, err := other.Issue(pki.Request{Kind: pki.Device, Name: "pos-12"})
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, d.in(provision.CertFile), string(id.CertPEM), 0o644)
		writeFile(t, d.in(provision.KeyFile), string(id.KeyPEM), 0o600)
		want(t, d.run(t), "broker", Fail, "(client_certificate): the broker refused the client certificate")
	})
	t.Run("disk nearly full", func(t *testing.T) {
		dataDir := d.in(provision.DataDir)
		err := syscall.Mount("tmpfs", dataDir, "tmpfs", 0, "size=1m,mode=0750,uid=4321,gid=4322")
		if err != nil {
			// No mount here (not root, or no CAP_SYS_ADMIN): the same check
			// on statfs figures, said loudly.
			t.Logf("*** cannot mount a tmpfs (%v): checking with an injected statfs of 1MiB free instead ***", err)
			env := d.env
			d.env.Statfs = func(string) (uint64, uint64, error) { return 1 << 20, 100 << 30, nil }
			defer func() { d.env = env }()
		} else {
			defer func() {
				if err := syscall.Unmount(dataDir, 0); err != nil {
					t.Errorf("unmount the tmpfs: %v", err)
				}
			}()
			t.Log("a 1MiB tmpfs is mounted on the data folder")
		}
		c := d.run(t)
		want(t, c, "disk", Fail, "too little")
		want(t, c, "permissions", OK, "")
	})
	t.Run("systemd unit down", func(t *testing.T) {
		env := d.env
		d.env.Systemctl = fakeSystemctl("failed", "enabled")
		defer func() { d.env = env }()
		want(t, d.run(t), "systemd", Fail, "keystone-agent.service is failed")
	})
	t.Run("no systemctl", func(t *testing.T) {
		env := d.env
		d.env.Systemctl = nil
		d.env.LookPath = func(string) (string, error) { return "", exec.ErrNotFound }
		defer func() { d.env = env }()
		want(t, d.run(t), "systemd", Warn, "systemctl not found")
	})
	t.Run("trust key unreadable", func(t *testing.T) {
		key := d.in(provision.TrustDir + "/ops.pub")
		defer restore(key)()
		writeFile(t, key, "not a key", 0o644)
		want(t, d.run(t), "trust", Fail, "ops.pub")
	})
	t.Run("broken config", func(t *testing.T) {
		cfg := d.in(provision.ConfigFile)
		defer restore(cfg)()
		writeFile(t, cfg, "device_id = \"pos-12\"\nbrokr = 1\n", 0o644)
		c := d.run(t)
		want(t, c, "config", Fail, "brokr: unknown key")
		want(t, c, "broker", Skip, "")
	})
	t.Run("repository unreachable", func(t *testing.T) {
		d.repo.Close()
		want(t, d.run(t), "repository", Fail, d.repo.URL)
	})
	if Failed([]Check{{Status: OK}, {Status: Warn}}) || !Failed([]Check{{Status: Fail}}) {
		t.Error("Failed")
	}
}

// The cgroup check reads the real cgroup file system of this machine the
// way the runner sees it.
func TestThisMachinesCgroups(t *testing.T) {
	var d run
	d.env = Env{Host: true, HostSet: true}
	d.env.fill()
	d.cgroups()
	c := d.checks[0]
	t.Logf("%s %s: %s", c.Name, c.Status, c.Message)
	if _, err := os.Stat("/sys/fs/cgroup/memory/cgroup.procs"); err == nil && c.Status != OK {
		t.Errorf("this host has v1 memory: %+v", c)
	}
}
