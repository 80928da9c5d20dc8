package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/agent"
	"github.com/keystone-edge/keystone/agent/api"
)

// agentBin is keystone-agent built once for the package, CGO_ENABLED=0 as
// shipped.
var agentBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keystone-agent-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBin = filepath.Join(dir, "keystone-agent")
	build := exec.Command("go", "build", "-o", agentBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build keystone-agent: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const waitFor = 90 * time.Second

func shortDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "ksa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// writeConfig writes a local-only agent.toml with its data folder and
// socket in dir.
func writeConfig(t *testing.T, dir, extra string) string {
	t.Helper()
	text := fmt.Sprintf(`device_id = "bin-test"
data_dir = %q
root_dir = %q
[api]
socket = %q
http_listen = ""
[trust]
allow_unsigned = true
# The tests run as root and their recipes name no run_as.
[security]
allow_root = true
%s`, filepath.Join(dir, "data"), filepath.Join(dir, "root"), filepath.Join(dir, "agent.sock"), extra)
	path := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// lockedBuffer collects a process's output safely.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// started is a keystone-agent process.
type started struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan error
	client *api.Client
}

// startBinary runs keystone-agent run --config cfg and waits for its
// systemd readiness notification (READY=1 on NOTIFY_SOCKET), which it sends
// once its API answers.
func startBinary(t *testing.T, cfg, socket string, env ...string) *started {
	t.Helper()
	return startBinaryArgs(t, []string{"run", "--config", cfg}, socket, env...)
}

// startBinaryArgs is startBinary with the whole command line.
func startBinaryArgs(t *testing.T, args []string, socket string, env ...string) *started {
	t.Helper()
	notifyPath := filepath.Join(shortDir(t), "notify")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	ready := make(chan struct{})
	go func() {
		buf := make([]byte, 256)
		for {
			n, _, err := notify.ReadFromUnix(buf)
			if err != nil {
				return
			}
			if strings.Contains(string(buf[:n]), "READY=1") {
				close(ready)
				return
			}
		}
	}()

	s := &started{stderr: &lockedBuffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(agentBin, args...)
	s.cmd.Env = append(os.Environ(), append(env, "NOTIFY_SOCKET="+notifyPath)...)
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	s.client = api.NewClient(socket)
	t.Cleanup(s.client.Close)
	select {
	case <-ready:
	case err := <-s.done:
		s.done <- err
		t.Fatalf("agent exited while starting: %v\n%s", err, s.stderr)
	case <-time.After(waitFor):
		t.Fatalf("agent not ready within %s\n%s", waitFor, s.stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := s.client.Health(ctx); err != nil {
		t.Fatalf("health after READY=1: %v\n%s", err, s.stderr)
	}
	return s
}

// wait returns the process's exit within the deadline.
func (s *started) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		return err
	case <-time.After(waitFor):
		t.Fatalf("agent did not exit within %s\n%s", waitFor, s.stderr)
		return nil
	}
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}

func recipe(name, script string, deps ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "format = 1\n[metadata]\nname = %q\nversion = \"1.0.0\"\nkind = \"process\"\n[lifecycle.run]\nscript = %q\nstop_timeout = \"5s\"\n", name, script)
	for _, d := range deps {
		fmt.Fprintf(&b, "[[dependencies]]\nname = %q\nversion = \"1.0.0\"\ntype = \"hard\"\n", d)
	}
	return b.String()
}

// deploy applies the named components (recipes keyed name → text) and waits
// until it has ended, returning its status.
func deploy(t *testing.T, c *api.Client, id string, recipes map[string]string) api.Deployment {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var m strings.Builder
	fmt.Fprintf(&m, "format = 1\n[deployment]\nid = %q\n", id)
	files := map[string][]byte{}
	for name, text := range recipes {
		fmt.Fprintf(&m, "[[components]]\nname = %q\nversion = \"1.0.0\"\nrecipe = %q\n", name, name+".recipe.toml")
		files[name+".recipe.toml"] = []byte(text)
	}
	events, err := c.Events(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	if _, err := c.Deploy(ctx, api.DeploymentRequest{Manifest: m.String(), Files: files}); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	for {
		d, err := c.Deployment(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status == "SUCCEEDED" || d.Status == "FAILED" || d.Status == "CANCELED" {
			return d
		}
		if _, err := events.Next(); err != nil {
			t.Fatalf("waiting for %s: %v", id, err)
		}
	}
}

// SIGTERM stops every component (dependents first) and exits 0; no process
// of a component is left, and the socket is gone.
func TestSIGTERMStopsComponentsAndExitsZero(t *testing.T) {
	dir := shortDir(t)
	sock := filepath.Join(dir, "agent.sock")
	a := startBinary(t, writeConfig(t, dir, ""), sock)
	d := deploy(t, a.client, "sigterm-1", map[string]string{
		"com.example.sigterm-base": recipe("com.example.sigterm-base", "trap 'exit 0' TERM; while :; do sleep 1; done"),
		"com.example.sigterm-top":  recipe("com.example.sigterm-top", "exec sleep 1000", "com.example.sigterm-base"),
	})
	if d.Status != "SUCCEEDED" {
		t.Fatalf("deployment %s: %s\n%s", d.Status, d.Error, a.stderr)
	}
	comps, err := a.client.Components(context.Background())
	if err != nil || len(comps) != 2 {
		t.Fatalf("components %+v %v", comps, err)
	}
	var pids []int
	for _, c := range comps {
		if c.State != "RUNNING" || c.Pid <= 0 {
			t.Fatalf("component %+v", c)
		}
		pids = append(pids, c.Pid)
	}

	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := a.wait(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v, want status 0\n%s", err, a.stderr)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("component process %d still runs after the agent exited", pid)
		}
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
	// Its cgroup root was its own (not the host's /keystone) and is gone.
	log := a.stderr.String()
	root := cgroupRoot(t, log)
	if root == "/keystone" || !strings.HasPrefix(root, "/keystone-") {
		t.Errorf("cgroup root %q: want one of this data folder's own", root)
	}
	left, _ := filepath.Glob("/sys/fs/cgroup/*" + root)         // v1 and hybrid hierarchies
	if _, err := os.Stat("/sys/fs/cgroup" + root); err == nil { // unified
		left = append(left, "/sys/fs/cgroup"+root)
	}
	if len(left) > 0 {
		t.Errorf("cgroup root left behind: %v", left)
	}
	// Dependents first: top stopped before base.
	top := strings.Index(log, `"component":"com.example.sigterm-top","from":"RUNNING","to":"STOPPING"`)
	base := strings.Index(log, `"component":"com.example.sigterm-base","from":"RUNNING","to":"STOPPING"`)
	if top < 0 || base < 0 || top > base {
		t.Errorf("stop order in the log: top at %d, base at %d; want the dependent first\n%s", top, base, log)
	}
}

// cgroupRoot is the root the agent's log says it used ("" without cgroups).
func cgroupRoot(t *testing.T, log string) string {
	t.Helper()
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `"msg":"component cgroups"`) {
			continue
		}
		var rec struct {
			Mode string `json:"mode"`
			Root string `json:"root"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Mode == "unavailable" {
			t.Skip("SKIPPED LOUDLY: no cgroups on this host")
		}
		return rec.Root
	}
	t.Fatalf("the agent did not log its cgroup root:\n%s", log)
	return ""
}

// The usage: help teaches, mistakes exit 2 with a pointer to help, a bad
// configuration exits 1 listing every problem.
func TestUsageAndExitCodes(t *testing.T) {
	dir := shortDir(t)
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("device_id = \"has space\"\nlog_level = \"loud\"\nsurprise = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr []string
	}{
		{[]string{"help"}, 0, "Usage:", nil},
		{[]string{"run", "--help"}, 0, "", []string{"--config FILE"}},
		{[]string{"version"}, 0, "keystone-agent dev", nil},
		{nil, 2, "", []string{"Usage:"}},
		{[]string{"frobnicate"}, 2, "", []string{`unknown command "frobnicate"`, "keystone-agent help"}},
		{[]string{"run"}, 2, "", []string{"--config FILE is required"}},
		{[]string{"run", "--config", bad, "extra"}, 2, "", []string{`unexpected argument "extra"`}},
		{[]string{"run", "--bogus"}, 2, "", []string{"bogus"}},
		{[]string{"run", "--config", filepath.Join(dir, "missing.toml")}, 1, "", []string{"missing.toml"}},
		{[]string{"run", "--config", bad}, 1, "", []string{"device_id", "log_level", "surprise"}},
	} {
		var stdout, stderr strings.Builder
		cmd := exec.Command(agentBin, tc.args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d\nstdout: %s\nstderr: %s", tc.args, code, tc.code, &stdout, &stderr)
		}
		if !strings.Contains(stdout.String(), tc.stdout) {
			t.Errorf("%v: stdout %q lacks %q", tc.args, &stdout, tc.stdout)
		}
		for _, want := range tc.stderr {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("%v: stderr %q lacks %q", tc.args, &stderr, want)
			}
		}
	}
}

// --data-dir and --socket override the file.
func TestFlagsOverrideTheFile(t *testing.T) {
	dir := shortDir(t)
	cfg := writeConfig(t, dir, "")
	other := filepath.Join(dir, "elsewhere")
	sock := filepath.Join(dir, "other.sock")
	a := startBinaryArgs(t, []string{"run", "--config", cfg, "--data-dir", other, "--socket", sock}, sock)
	if _, err := os.Stat(filepath.Join(other, "keystone.db")); err != nil {
		t.Errorf("--data-dir not used: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data_dir from the file was created anyway: %v", err)
	}
	if err := a.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := a.wait(t); err != nil {
		t.Fatalf("exit after SIGINT: %v\n%s", err, a.stderr)
	}
}

// KEYSTONE_FAULT_CRASH_AFTER_STEP kills the agent with SIGKILL right after
// the named checkpoint, and a restarted agent finishes the deployment.
func TestFaultHookCrashesAtTheNamedCheckpoint(t *testing.T) {
	dir := shortDir(t)
	cfg := writeConfig(t, dir, "")
	sock := filepath.Join(dir, "agent.sock")
	a := startBinary(t, cfg, sock, faultEnv+"=plan:done")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	m := "format = 1\n[deployment]\nid = \"fault-1\"\n[[components]]\nname = \"com.example.fault\"\nversion = \"1.0.0\"\nrecipe = \"f.recipe.toml\"\n"
	// The deployment runs as soon as it is recorded, so the agent may kill
	// itself at plan:done before its answer is written: an error here is
	// no failure. The checks below say whether it was recorded and resumed.
	_, deployErr := a.client.Deploy(ctx, api.DeploymentRequest{Manifest: m, Files: map[string][]byte{
		"f.recipe.toml": []byte(recipe("com.example.fault", "exec sleep 1000")),
	}})
	err := a.wait(t)
	if deployErr != nil {
		t.Logf("deploy answer lost to the crash: %v", deployErr)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("agent exit: %v, want killed by SIGKILL\n%s", err, a.stderr)
	}
	if !strings.Contains(a.stderr.String(), "plan:done") {
		t.Errorf("the agent did not say why it died:\n%s", a.stderr)
	}

	b := startBinary(t, cfg, sock)
	events, err := b.client.Events(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	for {
		d, err := b.client.Deployment(ctx, "fault-1")
		if err != nil {
			t.Fatal(err)
		}
		if d.Status == "SUCCEEDED" {
			break
		}
		if d.Status == "FAILED" || d.Status == "CANCELED" {
			t.Fatalf("resumed deployment ended %s: %s", d.Status, d.Error)
		}
		if _, err := events.Next(); err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("waiting for the resumed deployment: %v\n%s", err, b.stderr)
		}
	}
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := b.wait(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, b.stderr)
	}
}

// shutdownBound is the documented bound of a shutdown (docs/operations.md,
// "Shutdown"): the shutdown timeout, then a grace shared by the steps left.
const shutdownBound = agent.DefaultShutdownTimeout + agent.ShutdownGrace

// FIFOs in the watch folder, one named like a recipe and one imported by a
// recipe, never hold up SIGTERM: the agent exits 0 within the documented
// bound. The bound is a hang guard, not a timing figure.
func TestSIGTERMWithFIFOsInTheWatchFolder(t *testing.T) {
	dir := shortDir(t)
	watch := filepath.Join(dir, "watch")
	if err := os.Mkdir(watch, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"stuck.recipe.toml", "pipe.toml"} {
		if err := syscall.Mkfifo(filepath.Join(watch, name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := "imports = [\"pipe.toml\"]\n" + recipe("com.example.fifo", "exec sleep 1000")
	if err := os.WriteFile(filepath.Join(watch, "fifo.recipe.toml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	a := startBinary(t, writeConfig(t, dir, fmt.Sprintf("[dev]\nwatch_dir = %q\n", watch)), sock)
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-a.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v, want status 0\n%s", err, a.stderr)
		}
	case <-time.After(shutdownBound):
		t.Fatalf("agent still running %s after SIGTERM, past the documented shutdown bound\n%s", shutdownBound, a.stderr)
	}
	if log := a.stderr.String(); !strings.Contains(log, "watch folder not applied") || !strings.Contains(log, "pipe.toml") {
		t.Errorf("the watch folder was not refused naming the FIFO import:\n%s", log)
	}
}
