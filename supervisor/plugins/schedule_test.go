package plugins

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/runner/plugin"
	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/events"
)

func TestScheduleRunsEveryIntervalAndStateSurvivesARestart(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "keystone.db")
	e := newEnv(t, dbPath)
	c := component(t, "com.example.counter", counterScript, recipes.Plugin{State: true,
		Mapping: recipes.Mapping{Prefix: "ctr_", Labels: map[string]string{"site": "lab"}}})
	h := e.launch(t, c)
	if h.Pid() != 0 {
		t.Errorf("a schedule has pid %d", h.Pid())
	}
	if d := e.clock.WaitNext(t); d != 0 {
		t.Errorf("first run due in %v, want at once (jitter draw 0)", d)
	}
	for want := 1; want <= 3; want++ {
		rep := e.tick(t)
		if rep.Err != nil {
			t.Fatalf("run %d: %v", want, rep.Err)
		}
		if got := e.value(t, "ctr_runs_total", "site", "lab"); got != float64(want) {
			t.Errorf("after run %d ctr_runs_total = %v: the state did not carry over", want, got)
		}
		if d := e.clock.WaitNext(t); d != 10*time.Second {
			t.Errorf("next run due in %v, want the 10s interval", d)
		}
	}
	if got := e.value(t, "keystone_plugin_runs_total", "plugin", "com.example.counter", "result", "ok"); got != 3 {
		t.Errorf("runs_total ok = %v", got)
	}
	if got := e.value(t, "keystone_plugin_run_duration_seconds", "plugin", "com.example.counter"); got != 3 {
		t.Errorf("duration count = %v", got)
	}
	if got := e.value(t, "ctr_latency_seconds", "site", "lab"); got != 2 {
		t.Errorf("histogram count = %v", got)
	}
	if b, err := os.ReadFile(filepath.Join(e.textDir, "com.example.counter.prom")); err != nil || !has(string(b), `ctr_runs_total{site="lab"} 3`) {
		t.Errorf("textfile: %v\n%s", err, b)
	}
	saved, err := e.store.LoadPluginState(context.Background(), "com.example.counter")
	if err != nil || string(saved) != `{"runs":3}` {
		t.Fatalf("stored state %s, %v", saved, err)
	}
	st, err := e.l.Status("com.example.counter")
	if err != nil || st.Runs != 3 || st.Failures != 0 || st.LastSuccess.IsZero() {
		t.Errorf("status %+v, %v", st, err)
	}

	// An agent restart: the schedule stops, the store is closed, a new
	// agent opens the same file and launches the plugin again.
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-h.Done()
	if _, err := e.l.Status("com.example.counter"); !errors.Is(err, ErrNotScheduled) {
		t.Errorf("status after stop: %v, want ErrNotScheduled", err)
	}
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	e2 := newEnv(t, dbPath)
	e2.launch(t, c)
	if rep := e2.tick(t); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	if got := e2.value(t, "ctr_runs_total", "site", "lab"); got != 4 {
		t.Errorf("after the restart ctr_runs_total = %v, want 4 (state kept in the store)", got)
	}
}

func TestFailingPluginStaysScheduledAndShowsItsFailures(t *testing.T) {
	e := newEnv(t, "")
	sub := e.bus.Subscribe(t.Context(), 100)
	c := component(t, "com.example.flaky", `echo "db unreachable" >&2; exit 3`, recipes.Plugin{})
	h := e.launch(t, c)
	for i := 1; i <= 3; i++ {
		rep := e.tick(t)
		if !errors.Is(rep.Err, plugin.ErrExit) || rep.Status.ConsecutiveFailures != i {
			t.Fatalf("run %d: err %v, status %+v", i, rep.Err, rep.Status)
		}
	}
	select {
	case <-h.Done():
		t.Fatal("a failing plugin's schedule ended")
	default:
	}
	st, err := e.l.Status("com.example.flaky")
	if err != nil || st.Failures != 3 || st.ConsecutiveFailures != 3 || !st.Failing() ||
		!has(st.LastError, "exited with code 3") || !has(st.LastError, "db unreachable") {
		t.Fatalf("status %+v, %v", st, err)
	}
	if got := e.value(t, "keystone_plugin_runs_total", "plugin", "com.example.flaky", "result", "error"); got != 3 {
		t.Errorf("runs_total error = %v", got)
	}
	if got := e.value(t, "keystone_plugin_up", "plugin", "com.example.flaky"); got != 0 {
		t.Errorf("up = %v for a plugin that never succeeded", got)
	}
	lg, _ := e.logs.Log("com.example.flaky")
	var notes int
	for _, l := range lg.Tail(0) {
		if has(l.String(), "[keystone] plugin run failed: ") {
			notes++
		}
	}
	if notes != 3 {
		t.Errorf("%d failure notes in the component log, want 3: %v", notes, lg.Tail(0))
	}

	// Fixed in place: the next run succeeds and the failure streak ends.
	if err := os.WriteFile(filepath.Join(c.VersionDir, "collect.sh"), []byte("#!/bin/sh\necho '{\"metrics\":[{\"name\":\"ok\",\"type\":\"gauge\",\"value\":1}]}'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	rep := e.tick(t)
	if rep.Err != nil || rep.Status.ConsecutiveFailures != 0 || rep.Status.Failures != 3 || rep.Status.LastError == "" {
		t.Fatalf("after the fix: %v, %+v", rep.Err, rep.Status)
	}
	if got := e.value(t, "keystone_plugin_up", "plugin", "com.example.flaky"); got != 1 {
		t.Errorf("up = %v after a good run", got)
	}
	// One event when it started failing, one when it recovered: not one a run.
	var reasons []string
	for len(reasons) < 2 {
		select {
		case ev := <-sub:
			if ev.Kind == events.KindPlugin && ev.Component == "com.example.flaky" {
				reasons = append(reasons, ev.Detail["result"]+": "+ev.Reason)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("plugin events: %q", reasons)
		}
	}
	if !has(reasons[0], "error: plugin com.example.flaky: plugin: failed: exited with code 3") || reasons[1] != "ok: runs succeed again" {
		t.Errorf("events = %q", reasons)
	}
}

func TestRunDueWhileThePreviousRunsIsSkippedAndCounted(t *testing.T) {
	e := newEnv(t, "")
	c := component(t, "com.example.slow", "", recipes.Plugin{})
	fifo := filepath.Join(c.VersionDir, "gate")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// The run blocks until the test writes to the gate.
	script := "read -r line < " + fifo + "\necho '{\"metrics\":[{\"name\":\"slow\",\"type\":\"gauge\",\"value\":1}]}'\n"
	if err := os.WriteFile(filepath.Join(c.VersionDir, "collect.sh"), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	e.launch(t, c)
	e.clock.Advance(e.clock.WaitNext(t))
	gate, err := os.OpenFile(fifo, os.O_WRONLY, 0) // returns once the run has opened it
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(25 * time.Second) // slots at 10s and 20s come due mid-run
	if _, err := gate.WriteString("go\n"); err != nil {
		t.Fatal(err)
	}
	_ = gate.Close()
	rep := e.report(t)
	if rep.Err != nil {
		t.Fatal(rep.Err)
	}
	st, _ := e.l.Status("com.example.slow")
	if st.Skipped != 2 || st.Runs != 1 {
		t.Errorf("status %+v: want 1 run and 2 skipped slots", st)
	}
	if got := e.value(t, "keystone_plugin_runs_total", "plugin", "com.example.slow", "result", "skipped"); got != 2 {
		t.Errorf("runs_total skipped = %v", got)
	}
	if d := e.clock.WaitNext(t); d != 5*time.Second {
		t.Errorf("next run due in %v, want the 30s slot (5s from now)", d)
	}
}

func TestRunNowAnswersTheMappedMetrics(t *testing.T) {
	e := newEnv(t, "")
	c := component(t, "com.example.now", counterScript, recipes.Plugin{State: true, Mapping: recipes.Mapping{Prefix: "now_"}})
	h := e.launch(t, c)
	ms, err := e.l.RunNow(context.Background(), "com.example.now")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Name != "now_runs_total" || ms[0].Value != 1 || ms[1].Type != plugin.Histogram {
		t.Fatalf("metrics = %+v", ms)
	}
	<-e.reports
	// The scheduled run after it sees the state the run now kept.
	if rep := e.tick(t); rep.Err != nil || rep.Metrics[0].Value != 2 {
		t.Fatalf("scheduled run after run now: %v %+v", rep.Err, rep.Metrics)
	}
	if _, err := e.l.RunNow(context.Background(), "com.example.other"); !errors.Is(err, ErrNotScheduled) {
		t.Errorf("run now of an unknown plugin: %v", err)
	}
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.RunNow(context.Background(), "com.example.now"); !errors.Is(err, ErrNotScheduled) {
		t.Errorf("run now of a stopped plugin: %v", err)
	}
}

func TestRunNowOfAFailingPluginReturnsTheReason(t *testing.T) {
	e := newEnv(t, "")
	e.launch(t, component(t, "com.example.bad", `echo '{"metrics":[{"name":"a","type":"counter","value":-1}]}'`, recipes.Plugin{}))
	_, err := e.l.RunNow(context.Background(), "com.example.bad")
	var re *plugin.RunError
	if !errors.As(err, &re) || !errors.Is(err, plugin.ErrInvalidOutput) || !has(err.Error(), "counter value -1 is negative") {
		t.Fatalf("err = %v", err)
	}
}

func TestStopEndsARunInProgressWithoutCountingIt(t *testing.T) {
	e := newEnv(t, "")
	h := e.launch(t, component(t, "com.example.hang", "echo started >&2\nexec sleep 600", recipes.Plugin{Timeout: recipes.Duration{Duration: time.Hour}}))
	e.clock.Advance(e.clock.WaitNext(t))
	lg, _ := e.logs.Log("com.example.hang")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for line := range lg.Follow(ctx, -1) {
		if has(line.String(), "started") {
			break
		}
	}
	if err := h.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	select {
	case <-h.Done():
	default:
		t.Fatal("Stop returned before the schedule ended")
	}
	if got := e.value(t, "keystone_plugin_runs_total", "plugin", "com.example.hang", "result", "error"); got != 0 {
		t.Errorf("a run cut short by Stop was counted as an error")
	}
	if !h.Exit().Success() {
		t.Errorf("exit = %v", h.Exit())
	}
}

func TestRetainForgetsRemovedPlugins(t *testing.T) {
	e := newEnv(t, "")
	h := e.launch(t, component(t, "com.example.gone", counterScript, recipes.Plugin{}))
	e.launch(t, component(t, "com.example.kept", counterScript, recipes.Plugin{}))
	// Both may come due in one slot, and a tick waits for one report, not
	// for both: tick until each has run (and so written its textfile).
	ran := map[string]bool{}
	for !ran["com.example.gone"] || !ran["com.example.kept"] {
		ran[e.tick(t).Component] = true
	}
	for _, n := range []string{"com.example.gone", "com.example.kept"} {
		if _, err := os.Stat(filepath.Join(e.textDir, n+".prom")); err != nil {
			t.Fatalf("textfile of %s: %v", n, err)
		}
	}
	// Still scheduled: kept even when not named.
	if err := e.l.Retain(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.textDir, "com.example.gone.prom")); err != nil {
		t.Fatalf("a scheduled plugin was forgotten: %v", err)
	}
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.l.Retain([]string{"com.example.kept"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.textDir, "com.example.gone.prom")); !os.IsNotExist(err) {
		t.Errorf("textfile of a removed plugin: %v", err)
	}
	if got := e.value(t, "keystone_plugin_up", "plugin", "com.example.gone"); got != -1 {
		t.Errorf("up of a removed plugin is still served: %v", got)
	}
	if got := e.value(t, "keystone_plugin_up", "plugin", "com.example.kept"); got != 1 {
		t.Errorf("up of the kept plugin = %v", got)
	}
}

func TestPluginsRunUnderTheSupervisor(t *testing.T) {
	e := newEnv(t, "")
	sup, err := supervisor.New(supervisor.Config{
		Launcher: Dispatcher{Process: &supervisor.ProcessLauncher{Runner: e.runner, AllowRoot: true}, Plugins: e.l},
		Shell:    supervisor.ShellUser{AllowRoot: true},
		Events:   e.bus, Clock: e.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sup.Stop(context.Background()) }()
	moves := e.bus.Subscribe(t.Context(), 256)
	// It fails until "fixed" exists, then prints a valid (empty) document.
	c := component(t, "com.example.supervised", `test -f fixed && { echo '{"metrics":[]}'; exit 0; }; echo 'no sensor on /dev/i2c-1' >&2; exit 1`, recipes.Plugin{})
	if err := sup.Apply(context.Background(), []*supervisor.Component{c}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Scheduled but not ready before its first run: a deployment waits.
	waitTransition(t, moves, "com.example.supervised", supervisor.StateRunning)
	if st, _ := sup.Component("com.example.supervised"); st.Ready() || st.Health != supervisor.HealthStarting {
		t.Fatalf("ready before its first run: %+v", st)
	}
	// A failed run makes it DEGRADED, with the plugin's own words, and it
	// stays scheduled.
	if rep := e.tick(t); rep.Err == nil {
		t.Fatal("run succeeded")
	}
	ev := waitTransition(t, moves, "com.example.supervised", supervisor.StateDegraded)
	if !strings.Contains(ev.Reason, "plugin run failed") || !strings.Contains(ev.Reason, "no sensor on /dev/i2c-1") {
		t.Fatalf("DEGRADED without the plugin's stderr: %q", ev.Reason)
	}
	st, _ := sup.Component("com.example.supervised")
	if st.Health != supervisor.HealthUnhealthy || st.Kind != recipes.KindPlugin || st.Pid != 0 {
		t.Fatalf("status after a failed run: %+v", st)
	}
	// A good run makes it RUNNING and ready again.
	if err := os.WriteFile(filepath.Join(c.VersionDir, "fixed"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if rep := e.tick(t); rep.Err != nil {
		t.Fatalf("run failed: %v", rep.Err)
	}
	if err := sup.WaitReady(ctx, []string{"com.example.supervised"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sup.StopComponent(ctx, "com.example.supervised"); err != nil {
		t.Fatal(err)
	}
	if st, _ := sup.Component("com.example.supervised"); st.State != supervisor.StateStopped {
		t.Errorf("after stop: %s", st.State)
	}
	if _, err := e.l.Status("com.example.supervised"); !errors.Is(err, ErrNotScheduled) {
		t.Errorf("schedule still live after the component stopped: %v", err)
	}
	if !strings.Contains(st.Name, "supervised") {
		t.Fatal(st)
	}
}

// waitTransition waits (up to 30 s) for the component's next move to
// state on the bus subscription ch.
func waitTransition(t *testing.T, ch <-chan events.Event, name string, state supervisor.State) events.Event {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e := <-ch:
			if e.Kind == events.KindTransition && e.Component == name && e.To == state.String() {
				return e
			}
		case <-timeout:
			t.Fatalf("%s never reached %s", name, state)
		}
	}
}
