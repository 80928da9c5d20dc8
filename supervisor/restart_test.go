package supervisor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/internal/fakeclock"
	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/supervisor/events"
)

type testRig struct {
	sup   *Supervisor
	bus   *events.Bus
	w     *watcher
	clock *fakeclock.Clock
}

// newRig starts a supervisor over real processes with a fake clock (nil
// clock: the real one).
func newRig(t *testing.T, clock *fakeclock.Clock, cfg Config) *testRig {
	t.Helper()
	bus := events.New(nil)
	r := &testRig{bus: bus, w: watch(t, bus), clock: clock}
	if cfg.Launcher == nil {
		cfg.Launcher = newLauncher(t)
	}
	if cfg.Shell == (ShellUser{}) {
		cfg.Shell.AllowRoot = true // install scripts and cmd: checks as the root test agent, as newLauncher
	}
	cfg.Events = bus
	cfg.Logger = testLogger(t)
	cfg.Rand = func() float64 { return 0.5 } // no jitter: delays are exact
	if clock != nil {
		cfg.Clock = clock
	}
	sup, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sup.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	r.sup = sup
	return r
}

func (r *testRig) pid(t *testing.T, name string) int {
	t.Helper()
	st, err := r.sup.Component(name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pid == 0 {
		t.Fatalf("%s has no pid (state %s)", name, st.State)
	}
	return st.Pid
}

func (r *testRig) kill(t *testing.T, name string) int {
	t.Helper()
	pid := r.pid(t, name)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	return pid
}

// Acceptance 1: crash → restart after the backoff; the backoff grows and
// resets after a stable run; a crash loop is BROKEN at the configured
// count; a restart by hand clears BROKEN.
func TestCrashRestartBackoffBrokenAndManualRestart(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	r := newRig(t, clock, Config{})
	c := proc("com.example.crashy", "exec sleep 1000", func(rc *recipes.Recipe) {
		rc.Lifecycle.Run.RestartBackoff = recipes.Backoff{Initial: d("1s"), Max: d("4s")}
		rc.Lifecycle.Run.MaxRestarts = recipes.MaxRestarts{Count: 3, Window: d("1m")}
	})
	if err := r.sup.Apply(context.Background(), []*Component{c}); err != nil {
		t.Fatal(err)
	}
	r.w.waitFor(c.Name(), StateRunning, "started")
	first := r.pid(t, c.Name())

	// Crash 1: ERRORED, restart after 1s, not before.
	r.kill(t, c.Name())
	r.w.waitFor(c.Name(), StateErrored, "killed by SIGKILL; restart 1 in 1s")
	clock.WaitArmed(t, 1)
	clock.Advance(999 * time.Millisecond)
	crashed, _ := r.sup.Component(c.Name())
	if crashed.State != StateErrored || crashed.Pid != 0 || crashed.Failure != FailureSignaled {
		t.Fatalf("restarted before the backoff, or not a signal: %+v", crashed)
	}
	clock.Advance(time.Millisecond)
	r.w.waitFor(c.Name(), StateRunning, "started")
	second := r.pid(t, c.Name())
	if second == first {
		t.Fatalf("same pid %d after restart", second)
	}
	if st, _ := r.sup.Component(c.Name()); st.Generation == crashed.Generation {
		t.Fatalf("generation %d unchanged by a restart", st.Generation)
	}
	waitGone(t, first)

	// Crash 2 right away: the delay doubled.
	r.kill(t, c.Name())
	r.w.waitFor(c.Name(), StateErrored, "restart 2 in 2s")
	clock.WaitArmed(t, 1)
	clock.Advance(2 * time.Second)
	r.w.waitFor(c.Name(), StateRunning, "started")

	// A stable run (longer than DefaultStableRun) resets it to 1s.
	clock.Advance(30 * time.Second)
	r.kill(t, c.Name())
	r.w.waitFor(c.Name(), StateErrored, "restart 3 in 1s")
	clock.WaitArmed(t, 1)
	clock.Advance(time.Second)
	r.w.waitFor(c.Name(), StateRunning, "started")

	// The 4th restart within the minute is more than count = 3: BROKEN,
	// and it stays so: no timer, no process.
	r.kill(t, c.Name())
	r.w.waitFor(c.Name(), StateBroken, "more than 3 restarts within 1m0s")
	st, _ := r.sup.Component(c.Name())
	if st.State != StateBroken || st.Pid != 0 || st.Restarts != 3 || clock.Pending() != 0 {
		t.Fatalf("after the crash loop: %+v, %d timers", st, clock.Pending())
	}
	if err := r.sup.WaitReady(context.Background(), []string{c.Name()}); err == nil {
		t.Fatal("WaitReady of a BROKEN component succeeded")
	}

	// A restart by hand clears BROKEN and the restart count.
	state, err := r.sup.RestartComponent(context.Background(), c.Name())
	if err != nil {
		t.Fatal(err)
	}
	if state != StateRunning {
		t.Fatalf("restart answered %s", state)
	}
	st, _ = r.sup.Component(c.Name())
	if st.State != StateRunning || st.Restarts != 0 || st.Pid == 0 {
		t.Fatalf("after restart by hand: %+v", st)
	}
}

// Restart policies at the process level: on-failure finishes a clean exit;
// never leaves a failure ERRORED; a zero backoff restarts at once.
func TestRestartPoliciesWithRealExits(t *testing.T) {
	r := newRig(t, nil, Config{})
	once := proc("com.example.once", "exit 0", func(rc *recipes.Recipe) {
		rc.Lifecycle.Run.RestartPolicy = recipes.RestartOnFailure
	})
	never := proc("com.example.never", "echo boom >&2; exit 3", func(rc *recipes.Recipe) {
		rc.Lifecycle.Run.RestartPolicy = recipes.RestartNever
	})
	quick := proc("com.example.quick", "exit 1", func(rc *recipes.Recipe) {
		rc.Lifecycle.Run.RestartBackoff = recipes.Backoff{Initial: d("0s"), Max: d("0s")}
		rc.Lifecycle.Run.MaxRestarts = recipes.MaxRestarts{Count: 3, Window: d("1h")}
	})
	if err := r.sup.Apply(context.Background(), []*Component{once, never, quick}); err != nil {
		t.Fatal(err)
	}
	r.w.waitFor(once.Name(), StateFinished, "exited with status 0")
	r.w.waitFor(never.Name(), StateErrored, "exited with status 3: boom; restart_policy is never") // the evidence travels with the failure
	r.w.waitFor(quick.Name(), StateBroken, "more than 3 restarts")
	if err := r.sup.WaitReady(context.Background(), []string{once.Name()}); err != nil {
		t.Fatalf("a FINISHED component is done: %v", err)
	}
	st, _ := r.sup.Component(quick.Name())
	if st.Restarts != 3 {
		t.Fatalf("quick restarted %d times, want 3", st.Restarts)
	}
}

// A process that cannot be started (here: its program does not exist) is
// not retried in a tight loop even with restart_backoff.initial = "0s":
// failed starts in a row wait 100ms, 200ms, ... (real starts, fake clock).
func TestFailedStartsBackOffWithZeroBackoff(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	r := newRig(t, clock, Config{})
	c := proc("com.example.missing", "", func(rc *recipes.Recipe) {
		rc.Lifecycle.Run.Script, rc.Lifecycle.Run.Command = "", "/nonexistent/keystone-test-program"
		rc.Lifecycle.Run.RestartBackoff = recipes.Backoff{Initial: d("0s"), Max: d("1s")}
		rc.Lifecycle.Run.MaxRestarts = recipes.MaxRestarts{Count: 1000, Window: d("1m")}
	})
	if err := r.sup.Apply(context.Background(), []*Component{c}); err != nil {
		t.Fatal(err)
	}
	for i, wait := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
		r.w.waitFor(c.Name(), StateErrored, fmt.Sprintf("start failed: start %s: exec: /nonexistent/keystone-test-program: no such file or directory; restart %d in %s", c.Name(), i+1, wait))
		clock.WaitArmed(t, 1)
		// Just before the delay is over nothing has been tried again.
		clock.Advance(wait - time.Millisecond)
		if st, _ := r.sup.Component(c.Name()); st.State != StateErrored || st.Restarts != i+1 {
			t.Fatalf("retried before %s: %+v", wait, st)
		}
		clock.Advance(time.Millisecond)
		r.w.waitFor(c.Name(), StateStarting, "restarting after backoff")
	}
}

// broken_retry with real processes: a BROKEN component is started again
// once it has passed (not before), with a fresh restart count.
func TestBrokenComponentIsTriedAgainAfterBrokenRetry(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	r := newRig(t, clock, Config{})
	dir := t.TempDir()
	// Fails until the device is "repaired" (the file appears), then runs.
	c := proc("com.example.flaky", "test -f repaired && exec sleep 1000; echo 'cannot open /dev/ttyUSB0' >&2; exit 1", func(rc *recipes.Recipe) {
		rc.Lifecycle.Run.MaxRestarts = recipes.MaxRestarts{Count: 0, Window: d("10m")}
		rc.Lifecycle.Run.BrokenRetry = d("30m")
	})
	c.WorkDir = dir
	if err := r.sup.Apply(context.Background(), []*Component{c}); err != nil {
		t.Fatal(err)
	}
	r.w.waitFor(c.Name(), StateBroken, "tried again in 30m0s (broken_retry)")
	clock.WaitArmed(t, 1)
	if err := os.WriteFile(filepath.Join(dir, "repaired"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30*time.Minute - time.Second)
	if st, _ := r.sup.Component(c.Name()); st.State != StateBroken {
		t.Fatalf("tried again before broken_retry: %+v", st)
	}
	clock.Advance(time.Second)
	r.w.waitFor(c.Name(), StateStarting, "trying again after broken_retry")
	r.w.waitFor(c.Name(), StateRunning, "started")
	if st, _ := r.sup.Component(c.Name()); st.Restarts != 0 {
		t.Fatalf("the restart history was not fresh: %+v", st)
	}
}

// A stop by hand of a failed component (ERRORED for good, or BROKEN) leaves
// it STOPPED, and cancels its broken_retry; a start by hand starts it.
func TestStopAndStartOfFailedComponents(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	r := newRig(t, clock, Config{})
	never := proc("com.example.never", "exit 3", func(rc *recipes.Recipe) {
		rc.Lifecycle.Run.RestartPolicy = recipes.RestartNever
	})
	broken := proc("com.example.broken", "exit 1", func(rc *recipes.Recipe) {
		rc.Lifecycle.Run.MaxRestarts = recipes.MaxRestarts{Count: 0, Window: d("10m")}
		rc.Lifecycle.Run.BrokenRetry = d("30m")
	})
	if err := r.sup.Apply(context.Background(), []*Component{never, broken}); err != nil {
		t.Fatal(err)
	}
	r.w.waitFor(never.Name(), StateErrored, "restart_policy is never")
	r.w.waitFor(broken.Name(), StateBroken, "max_restarts")
	clock.WaitArmed(t, 1)
	for _, c := range []*Component{never, broken} {
		state, err := r.sup.StopComponent(context.Background(), c.Name())
		if err != nil || state != StateStopped {
			t.Fatalf("stop of %s: %s, %v; want STOPPED", c.Name(), state, err)
		}
		r.w.waitFor(c.Name(), StateStopped, "stop requested")
	}
	if n := clock.Pending(); n != 0 {
		t.Fatalf("%d timers pending after the stops: broken_retry not cancelled", n)
	}
	state, err := r.sup.StartComponent(context.Background(), never.Name())
	if err != nil || state != StateStarting && state != StateRunning {
		t.Fatalf("start of a stopped component: %s, %v", state, err)
	}
	r.w.waitFor(never.Name(), StateStarting, "start requested")
}
