package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/runner/cgroup"
	"github.com/keystone-edge/keystone/runner/logs"
)

func TestScriptGetsArgsEnvDirAndOutputIsCaptured(t *testing.T) {
	onBothStartPaths(t, testScriptGetsArgsEnvDirAndOutputIsCaptured)
}

func testScriptGetsArgsEnvDirAndOutputIsCaptured(t *testing.T, e *testEnv) {
	t.Setenv("KEYSTONE_AGENT_ONLY", "must-not-leak")
	dir := t.TempDir()
	p := e.start(t, ProcessSpec{
		Component: "com.example.script",
		Script: `echo "args:$0:$1:$2"; echo "pwd:$(pwd)"; echo "env:$FOO:$TOKEN"
env | grep -c KEYSTONE_AGENT_ONLY || true
echo "path:$PATH"
echo oops >&2
exit 3`,
		Args:    []string{"a", "b c"},
		Env:     []string{"FOO=bar", "TOKEN=overridden"},
		Secrets: map[string]string{"TOKEN": "s3cr3t-value"},
		Dir:     dir,
	})
	st := p.Wait()
	if st.Code != 3 || st.Signal != "" || st.Stopped || st.OOMKilled || st.Success() {
		t.Fatalf("status = %+v", st)
	}
	if st.Reason() != "exited with code 3" {
		t.Errorf("reason = %q", st.Reason())
	}
	if st.StderrTail != "oops" { // only stderr: the evidence of the failure
		t.Errorf("stderr tail = %q, want %q", st.StderrTail, "oops")
	}
	out := e.tail(t, "com.example.script")
	for _, want := range []string{
		"args:com.example.script:a:b c\n", "pwd:" + dir + "\n", "env:bar:s3cr3t-value\n", "\n0\n",
		"path:" + strings.TrimPrefix(defaultPath, "PATH=") + "\n", "[stderr] oops\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	file, err := os.ReadFile(e.logDir + "/com.example.script.log")
	if err != nil || !bytes.Contains(file, []byte(" [stderr] oops\n")) || !bytes.Contains(file, []byte(" pwd:"+dir+"\n")) {
		t.Fatalf("log file: %v\n%s", err, file)
	}
	if _, err := os.Stat(e.logDir); err != nil {
		t.Fatal(err)
	}
}

func TestCommandIsExecutedWithoutShell(t *testing.T) {
	e := newEnv(t, "", false)
	p := e.start(t, ProcessSpec{Component: "com.example.echo", Command: "/bin/echo", Args: []string{"$HOME", "*", "a;b"}})
	if st := p.Wait(); !st.Success() {
		t.Fatalf("status = %+v", st)
	}
	if out := e.tail(t, "com.example.echo"); out != "$HOME * a;b\n" {
		t.Fatalf("output = %q (a shell would have expanded it)", out)
	}
}

func TestSecretsNeverAppearInStringsLogsOrErrors(t *testing.T) {
	e := newEnv(t, "", false)
	spec := ProcessSpec{
		Component: "com.example.secret", Command: "/nonexistent/program",
		Env: []string{"PLAIN=visible"}, Secrets: map[string]string{"DB_PASS": "hunter2-secret"},
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("starting", "spec", spec)
	_, _, err := e.run(context.Background(), spec)
	if err == nil {
		t.Fatal("start of a missing program succeeded")
	}
	for what, text := range map[string]string{
		"String": spec.String(), "%v": fmt.Sprintf("%v", spec), "%+v": fmt.Sprintf("%+v", spec),
		"%#v": fmt.Sprintf("%#v", spec), "slog": logged.String(), "error": err.Error(),
	} {
		if strings.Contains(text, "hunter2-secret") || strings.Contains(text, "visible") {
			t.Errorf("%s shows an environment value: %s", what, text)
		}
	}
	if !strings.Contains(logged.String(), "DB_PASS") || !strings.Contains(spec.String(), "PLAIN") {
		t.Errorf("names should still be shown: %s / %s", logged.String(), spec.String())
	}
}

func TestSetupFailuresAreSetupErrorsNotExits(t *testing.T) {
	e := newEnv(t, "", false)
	for _, tc := range []struct {
		spec ProcessSpec
		step string
	}{
		{ProcessSpec{Component: "com.example.noexec", Command: "/nonexistent/program"}, "exec"},
		{ProcessSpec{Component: "com.example.nodir", Command: "/bin/true", Dir: "/nonexistent/dir"}, "chdir"},
		{ProcessSpec{Component: "com.example.noexecbit", Command: "/etc/hostname"}, "exec"},
	} {
		p, _, err := e.run(context.Background(), tc.spec)
		var se *SetupError
		if !errors.As(err, &se) || se.Step != tc.step || p != nil {
			t.Errorf("%s: err = %v, want a SetupError at %q", tc.spec.Component, err, tc.step)
			continue
		}
		if !strings.Contains(err.Error(), tc.spec.Component) {
			t.Errorf("error does not name the component: %v", err)
		}
		if out := e.tail(t, tc.spec.Component); out != "" {
			t.Errorf("a setup failure must not look like component output: %q", out)
		}
		cgroupDirsGone(t, e, e.root+"/"+tc.spec.Component)
	}
	if _, _, err := e.run(context.Background(), ProcessSpec{Component: "x", Command: "relative/path"}); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("relative command: %v", err)
	}
	if _, _, err := e.run(context.Background(), ProcessSpec{Component: "x", Command: "/bin/true", RunAs: "no-such-user-here"}); err == nil {
		t.Error("unknown run_as user accepted")
	}
}

// Acceptance 4: Stop kills the whole process group within stop_timeout,
// including a grandchild that ignores SIGTERM, and leaves no zombie.
func TestStopKillsWholeGroupIncludingGrandchildIgnoringTERM(t *testing.T) {
	for _, disabled := range []bool{false, true} {
		t.Run(fmt.Sprintf("cgroups_disabled=%v", disabled), func(t *testing.T) { testStopKillsWholeGroup(t, disabled) })
	}
}

func testStopKillsWholeGroup(t *testing.T, cgroupsDisabled bool) {
	e := newEnv(t, "", cgroupsDisabled)
	p := e.start(t, ProcessSpec{Component: "com.example.stubborn", Script: `trap '' TERM
sh -c 'echo "grandchild $$"; while :; do sleep 1; done' &
echo "main $$"
wait`})
	// "main", not "child": waitLine matches substrings, and the grandchild's
	// line may come first.
	child := pidAfter(t, e.waitLine(t, "com.example.stubborn", "main "), "main ")
	grandchild := pidAfter(t, e.waitLine(t, "com.example.stubborn", "grandchild "), "grandchild ")
	if child != p.Pid() || !alive(grandchild) {
		t.Fatalf("child %d (handle %d), grandchild alive %v", child, p.Pid(), alive(grandchild))
	}
	cg := p.CgroupPath()

	timeout := 300 * time.Millisecond
	begin := time.Now()
	st := p.Stop(context.Background(), StopOptions{Timeout: timeout})
	took := time.Since(begin)
	if !st.Stopped || !st.Forced || st.Signal != "SIGKILL" {
		t.Fatalf("status = %+v", st)
	}
	if st.Reason() != "stopped: SIGKILL after stop_timeout" {
		t.Errorf("reason = %q", st.Reason())
	}
	if took < timeout {
		t.Errorf("SIGKILL came after %s, before the %s stop timeout", took, timeout)
	}
	// Our child is reaped: not even a zombie.
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", child)); !os.IsNotExist(err) {
		t.Errorf("child %d still in /proc after Stop: %v", child, err)
	}
	// The grandchild is dead when Stop returns; init reaps it.
	if alive(grandchild) {
		t.Fatalf("grandchild %d survived Stop", grandchild)
	}
	waitGone(t, grandchild)
	if ms, err := groupMembers(child, 0); err != nil || len(ms) != 0 {
		t.Fatalf("process group %d still has %v (%v)", child, ms, err)
	}
	if !cgroupsDisabled {
		cgroupDirsGone(t, e, cg)
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, ErrFinished) {
		t.Errorf("signal after exit: %v", err)
	}
}

func TestStopWithSIGTERMIsGracefulAndIdempotent(t *testing.T) {
	e := newEnv(t, "", false)
	p := e.start(t, ProcessSpec{Component: "com.example.sleep", Command: "/bin/sleep", Args: []string{"300"}})
	var wg sync.WaitGroup
	results := make([]ExitStatus, 3)
	for i := range results {
		wg.Go(func() { results[i] = p.Stop(context.Background(), StopOptions{Timeout: 20 * time.Second}) })
	}
	wg.Wait()
	for _, st := range results {
		if !st.Stopped || st.Forced || st.Signal != "SIGTERM" || st != results[0] {
			t.Fatalf("statuses = %+v", results)
		}
	}
	if got := p.Stop(context.Background(), StopOptions{}); got != results[0] {
		t.Errorf("stop after exit = %+v", got)
	}
	if results[0].Reason() != "stopped, killed by SIGTERM" {
		t.Errorf("reason = %q", results[0].Reason())
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	if _, err := p.Stats(context.Background()); !errors.Is(err, ErrFinished) {
		t.Errorf("stats after exit: %v", err)
	}
}

func TestStopWithEndedContextKillsAtOnceAndStillReaps(t *testing.T) {
	e := newEnv(t, "", false)
	p := e.start(t, ProcessSpec{Component: "com.example.ctx", Script: `trap '' TERM; echo ready; while :; do sleep 1; done`})
	e.waitLine(t, "com.example.ctx", "ready")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	st := p.Stop(ctx, StopOptions{Timeout: time.Hour})
	if !st.Forced || st.Signal != "SIGKILL" {
		t.Fatalf("status = %+v", st)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", p.Pid())); !os.IsNotExist(err) {
		t.Fatal("not reaped")
	}
}

func TestShutdownScriptRunsBeforeTheStopSignal(t *testing.T) {
	e := newEnv(t, "", false)
	p := e.start(t, ProcessSpec{
		Component: "com.example.shutdown", Env: []string{"WHO=me"},
		Script: `trap 'echo "got TERM"; exit 0' TERM; echo ready; while :; do sleep 0.05; done`,
	})
	e.waitLine(t, "com.example.shutdown", "ready")
	st := p.Stop(context.Background(), StopOptions{ShutdownScript: `echo "bye from $WHO"; echo warn >&2`, Timeout: 20 * time.Second})
	if !st.Stopped || st.Forced || st.Code != 0 {
		t.Fatalf("status = %+v", st)
	}
	out := e.tail(t, "com.example.shutdown")
	bye, term := strings.Index(out, "bye from me\n"), strings.Index(out, "got TERM\n")
	if bye < 0 || term < 0 || bye > term || !strings.Contains(out, "[stderr] warn\n") {
		t.Fatalf("want the shutdown script's output before the TERM handler's:\n%s", out)
	}
}

func TestHungShutdownScriptIsKilledAndStopGoesOn(t *testing.T) {
	e := newEnv(t, "", false)
	p := e.start(t, ProcessSpec{Component: "com.example.hung", Command: "/bin/sleep", Args: []string{"300"}})
	st := p.Stop(context.Background(), StopOptions{ShutdownScript: `echo hanging; exec sleep 300`, ShutdownTimeout: 2 * time.Second})
	if !st.Stopped || st.Signal != "SIGTERM" {
		t.Fatalf("status = %+v", st)
	}
	out := e.tail(t, "com.example.hung")
	if !strings.Contains(out, "hanging\n") || !strings.Contains(out, "[keystone] shutdown script killed after 2s\n") {
		t.Fatalf("log:\n%s", out)
	}
}

func TestNaturalExitLeavesNoGrandchild(t *testing.T) {
	onBothStartPaths(t, testNaturalExitLeavesNoGrandchild)
}

func testNaturalExitLeavesNoGrandchild(t *testing.T, e *testEnv) {
	p := e.start(t, ProcessSpec{Component: "com.example.leaver", Script: `sleep 300 & echo "bg $!"; exit 0`})
	st := p.Wait()
	if !st.Success() || st.Stopped {
		t.Fatalf("status = %+v", st)
	}
	bg := pidAfter(t, e.tail(t, "com.example.leaver"), "bg ")
	if alive(bg) {
		t.Fatalf("background child %d outlived its component", bg)
	}
	waitGone(t, bg)
}

func TestSecondStartWhileRunningIsRefused(t *testing.T) {
	e := newEnv(t, "", false)
	p := e.start(t, ProcessSpec{Component: "com.example.once", Command: "/bin/sleep", Args: []string{"300"}})
	_, _, err := e.run(context.Background(), ProcessSpec{Component: "com.example.once", Command: "/bin/sleep", Args: []string{"300"}})
	if !errors.Is(err, cgroup.ErrBusy) {
		t.Fatalf("second start: %v, want cgroup.ErrBusy", err)
	}
	if st := p.Stop(context.Background(), StopOptions{}); !st.Stopped {
		t.Fatalf("status = %+v", st)
	}
}

func TestStatsMeasureCPUAndMemory(t *testing.T) {
	for _, disabled := range []bool{false, true} {
		t.Run(fmt.Sprintf("cgroups_disabled=%v", disabled), func(t *testing.T) {
			e := newEnv(t, "", disabled)
			p := e.start(t, ProcessSpec{Component: "com.example.busy", Script: `i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo burned; exec sleep 300`})
			e.waitLine(t, "com.example.busy", "burned")
			st, err := p.Stats(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.CPUSeconds <= 0 || st.RSSBytes == 0 || st.Processes != 1 {
				t.Fatalf("stats = %+v", st)
			}
			if (p.CgroupPath() == "") != disabled {
				t.Fatalf("cgroup path %q with cgroups disabled=%v", p.CgroupPath(), disabled)
			}
		})
	}
}

func TestUnavailableLimitsAreWarnedOnceAndTheProcessStillRuns(t *testing.T) {
	e := newEnv(t, "", true)
	spec := ProcessSpec{Component: "com.example.nolimits", Command: "/bin/sleep", Args: []string{"300"}, MemoryLimitBytes: 64 << 20, PidsLimit: 10}
	p, warnings, err := e.run(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 2 || warnings[0].Limit != cgroup.LimitMemory || warnings[1].Limit != cgroup.LimitPids ||
		!errors.Is(warnings[0], cgroup.ErrUnavailable) || !strings.HasPrefix(warnings[0].Error(), "com.example.nolimits: memory_limit=") {
		t.Fatalf("warnings = %v", warnings)
	}
	if !alive(p.Pid()) {
		t.Fatal("component not running")
	}
	p.Stop(context.Background(), StopOptions{})

	p, warnings, err = e.run(context.Background(), spec)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("second start: %v, warnings %v (want none: reported once)", err, warnings)
	}
	p.Stop(context.Background(), StopOptions{})
	spec.MemoryLimitBytes = 128 << 20
	p, warnings, err = e.run(context.Background(), spec)
	if err != nil || len(warnings) != 1 || warnings[0].Limit != cgroup.LimitMemory {
		t.Fatalf("changed limit: %v, warnings %v (want the new value reported)", err, warnings)
	}
	p.Stop(context.Background(), StopOptions{})
}

// A shim that dies before exec without a word (as a crashing runtime would)
// is a SetupError, not an exit of the component.
func TestShimDyingBeforeExecIsASetupError(t *testing.T) {
	requireRoot(t)
	fake := t.TempDir() + "/fake-shim"
	if err := os.WriteFile(fake, []byte("#!/bin/sh\ncat <&3 >/dev/null\nexit 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	lm, err := logs.Open(logs.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer lm.Close()
	r, err := New(Config{ShimPath: fake, Logs: lm, Cgroups: cgroup.Config{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	r.noDirect.Store(true) // this program would be started without a shim
	p, _, err := r.Start(context.Background(), ProcessSpec{Component: "com.example.crash", Command: "/bin/sleep", Args: []string{"300"}, AllowRoot: true})
	var se *SetupError
	if !errors.As(err, &se) || se.Step != "shim" || p != nil {
		t.Fatalf("err = %v, want a SetupError at step shim", err)
	}
}

// TestAfterDoneCallsOnceDone: a function given before the end is called
// once Done is closed; one given after the end is called too.
func TestAfterDoneCallsOnceDone(t *testing.T) {
	e := newEnv(t, "", false)
	p := e.start(t, ProcessSpec{Component: "com.example.afterdone", Command: "/bin/sleep", Args: []string{"300"}})
	called := make(chan bool, 2)
	p.AfterDone(func() {
		select {
		case <-p.Done():
			called <- true
		default:
			called <- false
		}
	})
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !<-called {
		t.Error("called before Done was closed")
	}
	p.AfterDone(func() { called <- true })
	<-called
}
