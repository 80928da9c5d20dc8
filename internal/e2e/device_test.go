package e2e

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/store"
)

// Deadlines of the harness. They bound waits on conditions; nothing here
// sleeps to let things settle.
const (
	startDeadline = 60 * time.Second  // agent start until its API answers
	stopDeadline  = 120 * time.Second // SIGTERM until exit
	ctlDeadline   = 3 * time.Minute   // one keystonectl run
	pollEvery     = 50 * time.Millisecond
)

// device is one simulated edge device: a data folder, an agent.toml, a
// signing key the agent trusts, and the agent process when it runs.
type device struct {
	t   testing.TB
	tag string // short, unique: in component names, device_id and markers
	dir string // everything of the device lives here
	// sock is the agent's local API socket.
	sock     string
	dataDir  string
	config   string
	key      string // the private key recipes are signed with
	unsigned bool   // trust.allow_unsigned

	agent  *agentProc
	starts int // how many times an agent was started, for log names
	// agentBin is the keystone-agent start runs; "" = built.agent.
	agentBin string
}

// deviceOptions change how a device is set up.
type deviceOptions struct {
	// allowUnsigned sets trust.allow_unsigned and signs nothing.
	allowUnsigned bool
	// extra is appended to agent.toml: the device's [mqtt] table, for
	// example.
	extra func(d *device) string
	// trust is more [trust] keys (a repository, its root).
	trust func(d *device) string
	// keyPair, when set, is the key recipes and jobs are signed with (a
	// fleet's), instead of one generated for the device.
	keyPair [2]string // private, public
	// top is more top-level agent.toml keys (groups, for example).
	top string
}

// newDevice makes a device in a short temporary folder (Unix socket paths
// are limited to 108 bytes) and removes it, and anything its components
// left running, when the test ends.
func newDevice(t testing.TB, o deviceOptions) *device {
	t.Helper()
	var b [3]byte
	_, _ = rand.Read(b[:])
	tag := "t" + hex.EncodeToString(b[:])
	dir, err := os.MkdirTemp("", "ks-"+tag+"-")
	if err != nil {
		t.Fatal(err)
	}
	d := &device{t: t, tag: tag, dir: dir, sock: filepath.Join(dir, "agent.sock"),
		dataDir: filepath.Join(dir, "data"), config: filepath.Join(dir, "agent.toml"), unsigned: o.allowUnsigned}
	t.Cleanup(d.cleanup)

	trust := "allow_unsigned = true"
	switch {
	case o.keyPair[0] != "":
		d.key = o.keyPair[0]
		trust = fmt.Sprintf("keys = [%q]", o.keyPair[1])
	case !o.allowUnsigned:
		d.ctlOK("keys", "generate", "--out", filepath.Join(dir, "ops"))
		d.key = filepath.Join(dir, "ops.key")
		trust = fmt.Sprintf("keys = [%q]", filepath.Join(dir, "ops.pub"))
	}
	if o.trust != nil {
		trust += "\n" + o.trust(d)
	}
	cfg := fmt.Sprintf(`device_id = "e2e-%s"
`+o.top+`
data_dir  = %q
root_dir  = %q
log_level = "debug"

[api]
socket      = %q
http_listen = ""

[trust]
%s

# The tests run as root and their recipes name no run_as.
[security]
allow_root = true
`, tag, d.dataDir, filepath.Join(dir, "root"), d.sock, trust)
	if o.extra != nil {
		cfg += "\n" + o.extra(d)
	}
	if err := os.WriteFile(d.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// sub returns the device as seen from subtest t: its helpers fail t.
// Start and stop the agent only through the device of the parent test.
func (d *device) sub(t *testing.T) *device {
	c := *d
	c.t = t
	return &c
}

// name is a component name unique to this device: "e2e.<tag>.<short>".
// Agents on one host share cgroup names, so tests never reuse a name.
func (d *device) name(short string) string { return "e2e." + d.tag + "." + short }

// agentProc is one run of keystone-agent.
type agentProc struct {
	cmd  *exec.Cmd
	log  string        // its stderr (JSON logs)
	done chan struct{} // closed when it has exited
	err  error         // its exit, once done is closed
}

// start runs the agent (with env added to its environment) and returns
// once its API answers. The test fails if it exits first.
func (d *device) start(env ...string) *agentProc {
	d.t.Helper()
	if d.agent != nil && !d.agent.exited() {
		d.t.Fatal("start: an agent is already running on this device")
	}
	d.starts++
	logPath := filepath.Join(d.dir, fmt.Sprintf("agent-%d.log", d.starts))
	logFile, err := os.Create(logPath)
	if err != nil {
		d.t.Fatal(err)
	}
	cmd := exec.Command(cmp.Or(d.agentBin, built.agent), "run", "--config", d.config)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		d.t.Fatal(err)
	}
	p := &agentProc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	d.agent = p

	c := api.NewClient(d.sock)
	defer c.Close()
	deadline := time.Now().Add(startDeadline)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := c.Health(ctx)
		cancel()
		if err == nil {
			return p
		}
		select {
		case <-p.done:
			d.t.Fatalf("keystone-agent exited while starting (%v):\n%s", p.err, tail(p.log, 40))
		case <-time.After(pollEvery):
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("keystone-agent API not answering after %s (last: %v):\n%s", startDeadline, err, tail(p.log, 40))
		}
	}
}

func (p *agentProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and requires a clean exit (status 0) in time.
func (d *device) stop() {
	d.t.Helper()
	p := d.agent
	if p == nil || p.exited() {
		d.t.Fatal("stop: no agent is running")
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopDeadline):
		_ = p.cmd.Process.Kill()
		<-p.done
		d.t.Fatalf("keystone-agent did not stop within %s of SIGTERM:\n%s", stopDeadline, tail(p.log, 40))
	}
	if p.err != nil {
		d.t.Fatalf("keystone-agent exit after SIGTERM: %v, want status 0:\n%s", p.err, tail(p.log, 40))
	}
}

// waitKilled waits for the agent to die of SIGKILL (a fault hook firing).
func (d *device) waitKilled(deadline time.Duration) {
	d.t.Helper()
	p := d.agent
	select {
	case <-p.done:
	case <-time.After(deadline):
		d.t.Fatalf("keystone-agent still running %s later; the fault hook never fired:\n%s", deadline, tail(p.log, 30))
	}
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		d.t.Fatalf("keystone-agent ended with %v, want SIGKILL:\n%s", p.err, tail(p.log, 30))
	}
}

// cleanup runs when the test ends: it kills an agent still running and
// every process a component of this device left, and shows the agent's
// last log lines when the test failed.
func (d *device) cleanup() {
	if p := d.agent; p != nil && !p.exited() {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	for _, pr := range processes(d.markerPrefix()) {
		_ = syscall.Kill(pr.pid, syscall.SIGKILL)
	}
	if d.t.Failed() && d.agent != nil {
		d.t.Logf("last lines of %s:\n%s", d.agent.log, tail(d.agent.log, 60))
	}
	if !d.t.Failed() || os.Getenv("KEYSTONE_E2E_KEEP") == "" {
		os.RemoveAll(d.dir)
	} else {
		d.t.Logf("device folder kept: %s", d.dir)
	}
}

// result is one keystonectl run.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// ctl runs the built keystonectl against this device's socket.
func (d *device) ctl(args ...string) result {
	d.t.Helper()
	return d.ctlAs(nil, args...)
}

// ctlAs runs keystonectl as another user (nil: as the test).
func (d *device) ctlAs(cred *syscall.Credential, args ...string) result {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ctlDeadline)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, built.ctl, append([]string{"--socket", d.sock}, args...)...)
	cmd.Dir = d.dir
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		d.t.Fatalf("keystonectl %v: %v", args, err)
	}
	for _, problem := range errorTextProblems(r.stderr) {
		d.t.Errorf("keystonectl %s: %s", strings.Join(args, " "), problem)
	}
	return r
}

// errorTextProblems checks what keystonectl printed as an error the way a
// reader would: an error is wrapped once, where information is added, so
// no phrase comes twice ("cancel d1: cancel d1: …"); nobody interrupted a
// command here, so "context canceled" is a leak; and the names of the
// agent's packages ("store: not found") mean nothing to an operator.
func errorTextProblems(stderr string) []string {
	var problems []string
	for _, line := range strings.Split(stderr, "\n") {
		msg, ok := strings.CutPrefix(line, "Error: ")
		if !ok {
			continue
		}
		if strings.Contains(msg, "context canceled") {
			problems = append(problems, fmt.Sprintf("%q says context canceled, but nobody canceled", msg))
		}
		if m := internalPrefix.FindString(msg); m != "" {
			problems = append(problems, fmt.Sprintf("%q shows an internal package name (%q)", msg, m))
		}
		seen := map[string]bool{}
		for _, part := range strings.Split(msg, ": ") {
			part = strings.TrimSpace(part)
			if len(part) >= 8 && seen[part] {
				problems = append(problems, fmt.Sprintf("%q repeats %q", msg, part))
				break
			}
			seen[part] = true
		}
	}
	return problems
}

// internalPrefix is a Go package's error prefix in a message.
var internalPrefix = regexp.MustCompile(`\b(store|supervisor|deploy|runner|recipes|sign|config|api): `)

// ctlOK runs keystonectl and requires exit 0.
func (d *device) ctlOK(args ...string) result {
	d.t.Helper()
	r := d.ctl(args...)
	if r.code != 0 {
		d.t.Fatalf("keystonectl %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// ctlJSON runs keystonectl -o json, requires exit 0 and decodes stdout.
func (d *device) ctlJSON(v any, args ...string) {
	d.t.Helper()
	r := d.ctlOK(append([]string{"-o", "json"}, args...)...)
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		d.t.Fatalf("keystonectl -o json %s: %v\n%s", strings.Join(args, " "), err, r)
	}
}

// components is component list -o json, by name.
func (d *device) components() map[string]api.Component {
	d.t.Helper()
	var list []api.Component
	d.ctlJSON(&list, "component", "list")
	out := make(map[string]api.Component, len(list))
	for _, c := range list {
		out[c.Name] = c
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes; what names the
// condition in the failure.
func (d *device) waitFor(what string, deadline time.Duration, cond func() bool) {
	d.t.Helper()
	timeout := time.After(deadline)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for !cond() {
		select {
		case <-timeout:
			d.t.Fatalf("timed out after %s waiting for %s", deadline, what)
		case <-tick.C:
		}
	}
}

// deployment is deploy status ID -o json.
func (d *device) deployment(id string) api.Deployment {
	d.t.Helper()
	var dep api.Deployment
	d.ctlJSON(&dep, "deploy", "status", id)
	return dep
}

// waitDeployment waits until deployment id has finished and returns it.
func (d *device) waitDeployment(id string, deadline time.Duration) api.Deployment {
	d.t.Helper()
	var dep api.Deployment
	d.waitFor("deployment "+id+" to finish", deadline, func() bool {
		dep = d.deployment(id)
		return dep.Status == "SUCCEEDED" || dep.Status == "FAILED" || dep.Status == "CANCELED"
	})
	return dep
}

// checkStore opens the stopped agent's database and runs PRAGMA
// integrity_check on it.
func (d *device) checkStore() {
	d.t.Helper()
	if d.agent != nil && !d.agent.exited() {
		d.t.Fatal("checkStore: stop the agent first")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, filepath.Join(d.dataDir, "keystone.db"))
	if err != nil {
		d.t.Fatalf("open the agent's store: %v", err)
	}
	defer st.Close()
	if err := st.Check(ctx); err != nil {
		d.t.Fatalf("PRAGMA integrity_check: %v", err)
	}
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// The error checker catches what operators were shown before.
func TestErrorTextProblems(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{
		"Error: cancel d1: cancel d1: cancel deployment d1: already SUCCEEDED: deploy: conflict [CONFLICT]",
		"Error: deployment nope: deployment nope: deploy: not found (get deployment nope: store: not found)",
		"Error: deployment d2 FAILED: install failed: exit 3: install failed: exit 3: context canceled",
	} {
		if len(errorTextProblems(bad+"\n")) == 0 {
			t.Errorf("not caught: %s", bad)
		}
	}
	good := "Error: deployment d2 FAILED: com.acme.crasher is ERRORED: exited with status 1: panic: cannot open /dev/ttyUSB0 [COMPONENT_FAILED]\n"
	if p := errorTextProblems(good); len(p) != 0 {
		t.Errorf("a clean error flagged: %v", p)
	}
}
