package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/agent/config"
	"github.com/keystone-edge/keystone/internal/proctest"
	"github.com/keystone-edge/keystone/runner/cgroup"
	"golang.org/x/sys/unix"
)

// The test binary doubles as a real agent in a process of its own, for
// the tests that kill an agent and start another on the same data folder:
// New, Start, Wait and Shutdown on the agent.toml it is given, exactly as
// Run does, with a fault hook that SIGKILLs it at the point it is told. It
// prints "ready" once started and stops cleanly on SIGTERM.
const (
	procAgentEnv   = "KEYSTONE_TEST_AGENT"             // agent.toml; set: run as the agent
	procCgroupEnv  = "KEYSTONE_TEST_AGENT_CGROUP_ROOT" // its components' cgroup root
	procCrashEnv   = "KEYSTONE_TEST_AGENT_CRASH_AT"    // fault point to SIGKILL itself at
	reaperHostEnv  = "KEYSTONE_TEST_REAPER_HOST"       // set: run as a subreaper hosting one agent
	procAgentReady = "ready"
)

// procAgent is the agent run by the test binary when procAgentEnv is set.
func procAgent() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cfg, err := config.Load(os.Getenv(procAgentEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "test agent:", err)
		return 1
	}
	opts := Options{Version: "test", Stderr: os.Stderr, Cgroups: cgroup.Config{Root: os.Getenv(procCgroupEnv)}}
	if at := os.Getenv(procCrashEnv); at != "" {
		opts.FaultHook = func(point string) {
			if point == at {
				fmt.Fprintf(os.Stderr, "test agent: killing myself at %s\n", at)
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // SIGKILL is on its way
			}
		}
	}
	a, err := New(ctx, cfg, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "test agent:", err)
		return 1
	}
	err = a.Start(ctx)
	if err == nil {
		fmt.Println(procAgentReady)
		err = a.Wait(ctx)
	}
	if err = errors.Join(err, a.Shutdown(ctx)); err != nil {
		fmt.Fprintln(os.Stderr, "test agent:", err)
		return 1
	}
	return 0
}

// reaperHost plays init for an agent: it is a child subreaper, starts the
// agent (same environment, minus its own variable), prints "agent PID",
// and reaps every child that comes to it, promptly, as init would, until
// its stdin closes; once the agent itself is reaped it prints "agent
// gone". So the processes of an agent killed with SIGKILL are orphans of
// this host, never of the test or of the next agent.
func reaperHost() int {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "reaper host:", err)
		return 1
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, reaperHostEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "reaper host:", err)
		return 1
	}
	fmt.Printf("agent %d\n", cmd.Process.Pid)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.ECHILD {
			select {} // nothing left to reap: wait for stdin to close
		}
		if pid == cmd.Process.Pid {
			fmt.Println("agent gone")
		}
	}
}

// procEnv is one device for agents in processes of their own: an
// agent.toml (its data folder, socket and trust), and the cgroup root of
// its components. Every agent started on it shares them, one at a time.
type procEnv struct {
	config string
	socket string
	data   string
	root   string
}

// newProcEnv writes the agent.toml of a device; extra is appended to it.
func newProcEnv(t testing.TB, extra string) *procEnv {
	t.Helper()
	dir := shortDir(t)
	e := &procEnv{
		config: filepath.Join(dir, "agent.toml"), socket: filepath.Join(dir, "agent.sock"),
		data: filepath.Join(dir, "data"), root: newCgroupRoot(t).Root,
	}
	text := fmt.Sprintf(`device_id = "proc-test"
data_dir = %q
root_dir = %q
log_level = "debug"

[api]
socket      = %q
http_listen = ""

# The tests run as root and their recipes name no run_as.
[security]
allow_root = true
%s`, e.data, filepath.Join(dir, "root"), e.socket, extra)
	if err := os.WriteFile(e.config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// agentProc is an agent the test started in a process of its own.
type agentProc struct {
	t      testing.TB
	cmd    *exec.Cmd
	pid    int // the agent's pid (under a reaper host, the host's child)
	client *api.Client
	stderr *syncBuffer
	lines  chan string   // its stdout, closed at its end
	exited chan struct{} // closed once the started process was waited for
	err    error         // its exit, valid once exited is closed
	gone   bool          // hosted: its host said "agent gone"
}

// startOptions change how start runs an agent.
type startOptions struct {
	hosted  bool   // under a reaper host
	crashAt string // a fault point to SIGKILL itself at
}

// start runs an agent on the device and returns once it is started (its
// API answers). It is stopped with SIGTERM when the test ends if it has
// not ended by then.
func (e *procEnv) start(t testing.TB, o startOptions) *agentProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), procAgentEnv+"="+e.config, procCgroupEnv+"="+e.root, procCrashEnv+"="+o.crashAt)
	if o.hosted {
		cmd.Env = append(cmd.Env, reaperHostEnv+"=1")
		stdin, err := cmd.StdinPipe() // closed: the host ends
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stdin.Close() })
	}
	a := &agentProc{t: t, cmd: cmd, stderr: &syncBuffer{}, lines: make(chan string, 64), exited: make(chan struct{})}
	cmd.Stderr = a.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a.pid = cmd.Process.Pid
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			a.lines <- sc.Text()
		}
		close(a.lines)
		a.err = cmd.Wait()
		close(a.exited)
	}()
	t.Cleanup(a.cleanup)
	if o.hosted {
		pid, err := strconv.Atoi(strings.TrimPrefix(a.line("agent "), "agent "))
		if err != nil {
			t.Fatal(err)
		}
		a.pid = pid
	}
	a.line(procAgentReady)
	a.client = api.NewClient(e.socket)
	t.Cleanup(a.client.Close)
	return a
}

// line waits for the next line of the agent's stdout that starts with
// prefix, and returns it.
func (a *agentProc) line(prefix string) string {
	a.t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case l, ok := <-a.lines:
			if !ok {
				<-a.exited
				a.t.Fatalf("agent ended before %q: %v\nstderr:\n%s", prefix, a.err, a.stderr)
			}
			a.gone = a.gone || l == "agent gone"
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-deadline:
			a.t.Fatalf("agent did not say %q within %s\nstderr:\n%s", prefix, waitFor, a.stderr)
		}
	}
}

// cleanup stops an agent a failed test left running: SIGTERM, so that it
// stops its components, then SIGKILL if it does not end.
func (a *agentProc) cleanup() {
	select {
	case <-a.exited:
		return
	default:
	}
	if !a.gone {
		_ = syscall.Kill(a.pid, syscall.SIGTERM)
	}
	if a.pid != a.cmd.Process.Pid { // hosted: the host is killed once the agent is gone
		deadline := time.After(waitFor)
		for ok := !a.gone; ok; {
			var l string
			select {
			case l, ok = <-a.lines:
			case <-deadline:
				ok = false
			}
			ok = ok && l != "agent gone"
		}
		_ = a.cmd.Process.Kill()
	}
	select {
	case <-a.exited:
	case <-time.After(waitFor):
		_ = a.cmd.Process.Kill()
		a.t.Errorf("agent %d did not end", a.pid)
	}
}

// stop sends the agent SIGTERM and requires a clean exit.
func (a *agentProc) stop() {
	a.t.Helper()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		a.t.Fatal(err)
	}
	select {
	case <-a.exited:
		if a.err != nil {
			a.t.Fatalf("agent exit: %v\nstderr:\n%s", a.err, a.stderr)
		}
	case <-time.After(waitFor):
		a.t.Fatalf("agent did not stop within %s\nstderr:\n%s", waitFor, a.stderr)
	}
}

// killed waits for the agent (not hosted) to die of the SIGKILL its fault
// hook sent at point.
func (a *agentProc) killed(point string) {
	a.t.Helper()
	select {
	case <-a.exited:
	case <-time.After(waitFor):
		a.t.Fatalf("agent was to crash at %s; it still runs after %s\nstderr:\n%s", point, waitFor, a.stderr)
	}
	var ee *exec.ExitError
	if !errors.As(a.err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		a.t.Fatalf("agent was to crash at %s; it ended with %v\nstderr:\n%s", point, a.err, a.stderr)
	}
}

// deploy submits req. The agent may crash (by a fault hook) before it
// answers, so a lost answer is no failure.
func (a *agentProc) deploy(req api.DeploymentRequest) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := a.client.Deploy(ctx, req); err != nil {
		a.t.Logf("deploy answer: %v", err)
	}
}

// settle waits, on the event stream, until no deployment is unfinished,
// every component of the committed deployment is supervised (the engine
// restores them after the API answers) and every supervised component is
// RUNNING; it returns the deployments (newest first) and the components.
func (a *agentProc) settle() ([]api.Deployment, []api.Component) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	stream, err := a.client.Events(ctx, true)
	if err != nil {
		a.t.Fatal(err)
	}
	defer stream.Close()
	for {
		list, err := a.client.Deployments(ctx, 0)
		if err != nil {
			a.t.Fatal(err)
		}
		comps, err := a.client.Components(ctx)
		if err != nil {
			a.t.Fatal(err)
		}
		if settled(list, comps) && a.restored(ctx, list, comps) {
			return list, comps
		}
		if _, err := stream.Next(); err != nil {
			a.t.Fatalf("not settled: %v\ndeployments: %+v\ncomponents: %+v\nstderr:\n%s", err, list, comps, a.stderr)
		}
	}
}

func settled(list []api.Deployment, comps []api.Component) bool {
	for _, d := range list {
		if d.Status == "QUEUED" || d.Status == "IN_PROGRESS" {
			return false
		}
	}
	for _, c := range comps {
		if c.State != "RUNNING" || c.Pid <= 0 {
			return false
		}
	}
	return true
}

// restored reports whether every component the committed deployment's
// plan keeps is in comps.
func (a *agentProc) restored(ctx context.Context, list []api.Deployment, comps []api.Component) bool {
	a.t.Helper()
	id := current(list)
	if id == "" {
		return true
	}
	d, err := a.client.Deployment(ctx, id)
	if err != nil {
		a.t.Fatalf("deployment %s: %v", id, err)
	}
	have := map[string]bool{}
	for _, c := range comps {
		have[c.Name] = true
	}
	for _, p := range d.Plan {
		if p.Action != "remove" && !have[p.Component] {
			return false
		}
	}
	return true
}

// current is the device's committed deployment: the newest that succeeded.
func current(list []api.Deployment) string {
	for _, d := range list {
		if d.Status == "SUCCEEDED" {
			return d.ID
		}
	}
	return ""
}

// deployment returns deployment id with its steps.
func (a *agentProc) deployment(id string) api.Deployment {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	d, err := a.client.Deployment(ctx, id)
	if err != nil {
		a.t.Fatalf("deployment %s: %v", id, err)
	}
	return d
}

// stepsOf is a deployment's checkpoints, "name:status" each.
func stepsOf(d api.Deployment) string {
	var parts []string
	for _, s := range d.Steps {
		parts = append(parts, s.Name+":"+s.Status)
	}
	return strings.Join(parts, " ")
}

// procStat is field n (1-based, as in proc(5)) of /proc/pid/stat, "" when
// pid is gone.
func procStat(pid, n int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if n-3 >= len(f) {
		return ""
	}
	return f[n-3]
}

// ppid is the parent of pid.
func ppid(pid int) int {
	v, _ := strconv.Atoi(procStat(pid, 4))
	return v
}

// startTicks is the start time of pid, as the store records it.
func startTicks(pid int) uint64 {
	v, _ := strconv.ParseUint(procStat(pid, 22), 10, 64)
	return v
}

// waitGone waits until pid no longer runs, through a pidfd (which works
// for processes that are not our children).
func waitGone(t testing.TB, pid int) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return // already gone
	}
	defer unix.Close(fd)
	n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(waitFor/time.Millisecond))
	if (err != nil || n == 0) && proctest.Alive(pid) {
		t.Fatalf("pid %d still alive after %s (%v)", pid, waitFor, err)
	}
}
