package supervisor

import (
	"bufio"
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/runner"
	"github.com/keystone-edge/keystone/runner/cgroup"
	"github.com/keystone-edge/keystone/runner/logs"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor/events"
	"golang.org/x/sys/unix"
)

// The test binary doubles as a small agent (until cmd/keystone-agent
// exists): a Supervisor over a real store file, supervising N components
// that each run `sleep <base+i>`, base being sleepBase of its cgroup root
// (so each one's process is recognisable in /proc, and never mistaken for
// one of another test's mini agents running at the same time). It prints
// "ready" once all run and stops cleanly on SIGTERM.
const (
	miniAgentEnv  = "KEYSTONE_TEST_MINIAGENT" // set: run as the mini agent
	miniAgentDB   = "KEYSTONE_TEST_MINIAGENT_DB"
	miniAgentN    = "KEYSTONE_TEST_MINIAGENT_N"
	miniAgentRoot = "KEYSTONE_TEST_MINIAGENT_CGROUP_ROOT"
	miniAgentLogs = "KEYSTONE_TEST_MINIAGENT_LOGS"
	reaperHostEnv = "KEYSTONE_TEST_REAPER_HOST" // set: run as a subreaper hosting one mini agent
	// miniAgentCrashOnRecord is an injected fault: set, the mini agent
	// SIGKILLs itself when it is about to record its first process, as an
	// agent dying between fork and the store write would.
	miniAgentCrashOnRecord = "KEYSTONE_TEST_MINIAGENT_CRASH_ON_RECORD"
	miniAgentBase          = 700000 // the bench's supervisord and s6 programs sleep from here
)

// sleepBase is the first `sleep` argument of the components of a mini agent
// whose cgroups are under root: unique per root (newCgroupRoot is random).
func sleepBase(root string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(root))
	return 1_000_000 + int(h.Sum32()%100_000)*100
}

func TestMain(m *testing.M) {
	if runner.IsShim(os.Args) {
		runner.ShimMain()
	}
	if os.Getenv(reaperHostEnv) != "" {
		os.Exit(reaperHost())
	}
	if os.Getenv(miniAgentEnv) != "" {
		os.Exit(miniAgent())
	}
	os.Exit(m.Run())
}

func miniComponents(base, n int) ([]*Component, error) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		return nil, err
	}
	out := make([]*Component, n)
	for i := range out {
		out[i] = proc(fmt.Sprintf("com.example.c%03d", i), "", func(r *recipes.Recipe) {
			// exec'd directly: the component's process is `sleep N` from the start
			r.Lifecycle.Run.Command, r.Lifecycle.Run.Args = sleep, []string{strconv.Itoa(base + i)}
			r.Lifecycle.Run.RestartBackoff = recipes.Backoff{Initial: d("10ms"), Max: d("1s")}
			r.Lifecycle.Run.MaxRestarts = recipes.MaxRestarts{Count: 1000, Window: d("1m")}
		})
	}
	return out, nil
}

func miniAgent() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "mini agent: %s: %v\n", what, err)
		return 1
	}
	n, err := strconv.Atoi(os.Getenv(miniAgentN))
	if err != nil {
		return fail("component count", err)
	}
	st, err := store.Open(ctx, os.Getenv(miniAgentDB))
	if err != nil {
		return fail("open store", err)
	}
	defer st.Close()
	lm, err := logs.Open(logs.Config{Dir: os.Getenv(miniAgentLogs)})
	if err != nil {
		return fail("open logs", err)
	}
	defer lm.Close()
	run, err := runner.New(runner.Config{Logs: lm, Cgroups: cgroup.Config{Root: os.Getenv(miniAgentRoot)}})
	if err != nil {
		return fail("runner", err)
	}
	var rec ProcessRecorder = st
	if os.Getenv(miniAgentCrashOnRecord) != "" {
		rec = crashOnRecord{st}
	}
	// Root allowed: the mini agent runs as root and its components name no run_as.
	sup, err := New(Config{Launcher: &ProcessLauncher{Runner: run, AllowRoot: true}, Recorder: rec, Reaper: OrphanReaper(run, 5*time.Second),
		Shell: ShellUser{AllowRoot: true}, Events: &printWarnings{w: os.Stdout}})
	if err != nil {
		return fail("new", err)
	}
	if err := sup.Start(ctx); err != nil {
		return fail("start", err)
	}
	stopped := false
	defer func() { // on a failure too: a mini agent never leaves its components behind
		if !stopped {
			sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = sup.Stop(sctx)
		}
	}()
	comps, err := miniComponents(sleepBase(os.Getenv(miniAgentRoot)), n)
	if err != nil {
		return fail("components", err)
	}
	names := make([]string, n)
	for i, c := range comps {
		names[i] = c.Name()
	}
	if err := sup.Apply(ctx, comps); err != nil {
		return fail("apply", err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = sup.WaitReady(wctx, names)
	cancel()
	if err != nil {
		return fail("wait ready", err)
	}
	fmt.Println("ready")
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stopped = true
	if err := sup.Stop(sctx); err != nil {
		return fail("stop", err)
	}
	return 0
}

// crashOnRecord is the store with one fault: the agent dies just before it
// would record a process, leaving that process running and unrecorded.
type crashOnRecord struct{ *store.Store }

func (crashOnRecord) RecordProcess(context.Context, store.Process) error {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // not reached: SIGKILL ends the process
}

// printWarnings prints the warning events of a mini agent on its stdout,
// one a line ("warning COMPONENT: REASON"), for the test to read.
type printWarnings struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printWarnings) Publish(e events.Event) {
	if e.Kind != events.KindWarning {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "warning %s: %s\n", e.Component, e.Reason)
}

// reaperHost plays init for a mini agent: it is a child subreaper, starts
// the mini agent (same environment, minus its own variable), prints
// "agent PID", and reaps every child that comes to it, promptly, as init
// would, until its stdin closes; once the mini agent itself is reaped it
// prints "agent gone". So the processes of a mini agent killed
// with SIGKILL are orphans of this host, never of the test or of the next
// agent.
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

// agentProc is a mini agent started by a test.
type agentProc struct {
	cmd    *exec.Cmd
	pid    int           // the agent's pid (with a reaper host, its child's)
	exited chan struct{} // closed once the started process was waited for
	err    error         // its exit, valid once exited is closed
	// warnings are the warning events it printed before it was ready (or,
	// hosted, gone).
	warnings []string
}

// startMiniAgent starts a mini agent over the store file db, its component
// logs in logDir and their cgroups under root; hosted, under a reaper host.
// It returns once the agent is ready.
func startMiniAgent(t testing.TB, db, logDir, root string, n int, hosted bool) *agentProc {
	t.Helper()
	return launchMiniAgent(t, db, logDir, root, n, hosted, nil)
}

// crashMiniAgent starts a hosted mini agent with the crashOnRecord fault
// and returns once it is gone, its reaper host still running (so that its
// orphans are the host's).
func crashMiniAgent(t testing.TB, db, logDir, root string, n int) *agentProc {
	t.Helper()
	return launchMiniAgent(t, db, logDir, root, n, true, []string{miniAgentCrashOnRecord + "=1"})
}

func launchMiniAgent(t testing.TB, db, logDir, root string, n int, hosted bool, env []string) *agentProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), miniAgentEnv+"=1", miniAgentDB+"="+db, miniAgentN+"="+strconv.Itoa(n),
		miniAgentRoot+"="+root, miniAgentLogs+"="+logDir)
	cmd.Env = append(cmd.Env, env...)
	crash := len(env) > 0
	if hosted {
		cmd.Env = append(cmd.Env, reaperHostEnv+"=1")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stdin.Close() })
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &agentProc{cmd: cmd, pid: cmd.Process.Pid, exited: make(chan struct{})}
	hostedPid := make(chan int, 1) // the agent's pid as its host reports it
	t.Cleanup(func() {             // a test that fails half-way leaves no agent behind
		select {
		case pid := <-hostedPid:
			_ = syscall.Kill(pid, syscall.SIGTERM)
		default:
		}
		_ = cmd.Process.Kill()
		select {
		case <-a.exited:
		case <-time.After(time.Minute):
			t.Errorf("mini agent %d did not end", cmd.Process.Pid)
		}
	})
	// The agent is ready when it says so; a crashing one, when its host
	// says it is gone.
	want := "ready"
	if crash {
		want = "agent gone"
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := true
		if hosted {
			ok = sc.Scan() && strings.HasPrefix(sc.Text(), "agent ")
			if ok {
				pid, _ := strconv.Atoi(strings.TrimPrefix(sc.Text(), "agent "))
				hostedPid <- pid
			}
		}
		for ok {
			ok = sc.Scan()
			if strings.HasPrefix(sc.Text(), "warning ") {
				a.warnings = append(a.warnings, strings.TrimPrefix(sc.Text(), "warning "))
				continue
			}
			if ok && sc.Text() == want {
				break
			}
		}
		ready <- ok
		_, _ = io.Copy(io.Discard, out)
		a.err = cmd.Wait()
		close(a.exited)
	}()
	select {
	case ok := <-ready:
		if !ok {
			<-a.exited
			t.Fatalf("mini agent did not get %s: %v", want, a.err)
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("mini agent not %s after 2 minutes", want)
	}
	if hosted {
		a.pid = <-hostedPid
		hostedPid <- a.pid // for the cleanup
	}
	return a
}

// componentProcs maps each component index of the mini agents under the
// cgroup root to the live pids running its `sleep` in /proc.
func componentProcs(t testing.TB, root string, n int) map[int][]int {
	t.Helper()
	base := sleepBase(root)
	out := map[int][]int{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !pidAlive(pid) {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) != 2 || filepath.Base(args[0]) != "sleep" {
			continue
		}
		v, err := strconv.Atoi(args[1])
		if err != nil || v < base || v >= base+n {
			continue
		}
		out[v-base] = append(out[v-base], pid)
	}
	return out
}

// ppid reads the parent of pid from /proc.
func ppid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	v, _ := strconv.Atoi(f[1])
	return v
}
