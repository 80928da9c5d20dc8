package svcmgr_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/internal/proctest"
	"github.com/keystone-edge/keystone/internal/svcmgr"
)

// bound is how long a test waits for anything before failing; it is a
// bound, never an expected duration.
const bound = time.Minute

func self(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// start runs the fake service in mode under a manager closed at cleanup.
func start(t *testing.T, mode string, cfg svcmgr.Config) *svcmgr.Manager {
	t.Helper()
	if cfg.Exec == "" {
		cfg.Exec = self(t)
	}
	cfg.Env = append(os.Environ(), fakeEnv+"="+mode)
	if _, ok := os.LookupEnv("GORACE"); !ok {
		cfg.Env = append(cfg.Env, "GORACE=atexit_sleep_ms=0") // no second's pause at each exit
	}
	if cfg.TimeoutStopSec == 0 {
		cfg.TimeoutStopSec = 10 * time.Second
	}
	cfg.Stderr = t.Output()
	m, err := svcmgr.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Close()
		if t.Failed() {
			logRecord(t, m)
		}
	})
	return m
}

func logRecord(t *testing.T, m *svcmgr.Manager) {
	for _, tr := range m.Transitions() {
		t.Logf("transition %s -> %s (%s)", tr.From, tr.To, tr.Why)
	}
	for _, n := range m.Notifications() {
		t.Logf("notification %s", n)
	}
	for _, n := range m.Ignored() {
		t.Logf("ignored %s", n)
	}
	for _, e := range m.Exits() {
		t.Logf("exit %s", e)
	}
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), bound)
	t.Cleanup(cancel)
	return ctx
}

// whys returns the reasons of the transitions into state.
func whys(m *svcmgr.Manager, to svcmgr.State) []string {
	var out []string
	for _, tr := range m.Transitions() {
		if tr.To == to {
			out = append(out, tr.Why)
		}
	}
	return out
}

func TestRestartAfterCrash(t *testing.T) {
	for _, tc := range []struct {
		mode  string
		check func(svcmgr.Exit) bool
	}{
		{"exit1", func(e svcmgr.Exit) bool { return e.Code == 1 && e.Result == svcmgr.ResultExitCode }},
		{"segv", func(e svcmgr.Exit) bool {
			return e.Signal == syscall.SIGSEGV && (e.Result == svcmgr.ResultSignal || e.Result == svcmgr.ResultCoreDump)
		}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ctx := waitCtx(t)
			m := start(t, tc.mode, svcmgr.Config{RestartSec: 10 * time.Millisecond})
			if err := m.WaitStarts(ctx, 2); err != nil {
				t.Fatal(err)
			}
			exits := m.Exits()
			if len(exits) == 0 || !tc.check(exits[0]) {
				t.Fatalf("first exit %v", exits)
			}
			if exits[0].PID <= 0 || exits[0].Exec != self(t) {
				t.Errorf("exit pid %d exec %q, want the test binary", exits[0].PID, exits[0].Exec)
			}
			if got := whys(m, svcmgr.Activating); len(got) < 2 || got[0] != "start" || got[1] != "exit" {
				t.Errorf("entered activating by %v, want start then exit (auto-restart)", got)
			}
		})
	}
}

func TestWatchdogAbortsAndRestartsHungService(t *testing.T) {
	ctx := waitCtx(t)
	m := start(t, "hang", svcmgr.Config{
		WatchdogSec:     time.Second,
		TimeoutAbortSec: 200 * time.Millisecond,
		TimeoutStopSec:  200 * time.Millisecond,
		RestartSec:      10 * time.Millisecond,
	})
	ready, err := m.WaitNotification(ctx, "READY=1")
	if err != nil {
		t.Fatal(err)
	}
	// WATCHDOG_PID named the main pid: SdWatchdogEnabled saw the watchdog.
	if status, _ := ready.Get("STATUS"); !strings.Contains(status, "wd=1000000") {
		t.Errorf("service saw STATUS=%q, want wd=1000000 (WATCHDOG_USEC and a matching WATCHDOG_PID)", status)
	}
	exits, err := m.WaitExits(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	// It ignores SIGABRT, so SIGKILL follows TimeoutAbortSec.
	if e := exits[0]; e.Result != svcmgr.ResultWatchdog || e.Signal != syscall.SIGKILL {
		t.Fatalf("exit %s, want result watchdog after SIGKILL", e)
	}
	if got := whys(m, svcmgr.Deactivating); len(got) == 0 || got[0] != "watchdog" {
		t.Errorf("deactivating by %v, want watchdog", got)
	}
	if err := m.WaitStarts(ctx, 2); err != nil {
		t.Fatal(err)
	}
}

func TestWatchdogTriggerWithoutWatchdogSec(t *testing.T) {
	ctx := waitCtx(t)
	m := start(t, "trigger", svcmgr.Config{
		TimeoutAbortSec: 200 * time.Millisecond,
		TimeoutStopSec:  200 * time.Millisecond,
		RestartSec:      10 * time.Millisecond,
	})
	exits, err := m.WaitExits(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if e := exits[0]; e.Result != svcmgr.ResultWatchdog || e.Signal != syscall.SIGKILL {
		t.Fatalf("exit %s, want result watchdog after SIGKILL", e)
	}
	if got := whys(m, svcmgr.Deactivating); len(got) == 0 || got[0] != "watchdog=trigger" {
		t.Errorf("deactivating by %v", got)
	}
}

func TestReloadExecsInPlace(t *testing.T) {
	ctx := waitCtx(t)
	m := start(t, "serve", svcmgr.Config{WatchdogSec: 5 * time.Second, ReloadNeedsMonotonic: true})
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	pid := m.MainPID()
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := m.MainPID(); got != pid {
		t.Errorf("main pid %d after the reload, was %d", got, pid)
	}
	if m.Starts() != 1 || len(m.Exits()) != 0 {
		t.Errorf("%d starts and exits %v across a reload, want 1 and none", m.Starts(), m.Exits())
	}
	notes := m.Notifications()
	reloading := slices.IndexFunc(notes, func(n svcmgr.Notification) bool { return n.Has("RELOADING=1") })
	if reloading < 0 {
		t.Fatal("no RELOADING=1")
	}
	if _, ok := notes[reloading].Get("MONOTONIC_USEC"); !ok {
		t.Error("RELOADING=1 without MONOTONIC_USEC")
	}
	ready := slices.IndexFunc(notes[reloading:], func(n svcmgr.Notification) bool { return n.Has("READY=1") })
	if ready < 0 {
		t.Fatal("no READY=1 after RELOADING=1")
	}
	ready += reloading
	if status, _ := notes[ready].Get("STATUS"); !strings.HasPrefix(status, "gen=1 wd=5000000") {
		t.Errorf("READY=1 after the reload says STATUS=%q, want the new image (gen=1) still watched", status)
	}
	for _, n := range notes {
		if n.PID != pid {
			t.Errorf("notification from pid %d, main is %d: %s", n.PID, pid, n)
		}
	}
	if got := whys(m, svcmgr.Reloading); !slices.Equal(got, []string{"reload"}) {
		t.Errorf("reloading by %v", got)
	}
	if got := whys(m, svcmgr.Active); !slices.Equal(got, []string{"ready=1", "ready=1"}) {
		t.Errorf("active by %v, want ready=1 twice", got)
	}
	// The new image keeps the watchdog fed: WATCHDOG_PID still matches.
	err := m.WaitFor(ctx, "a WATCHDOG=1 from the new image", func() bool {
		return slices.ContainsFunc(m.Notifications()[ready:], func(n svcmgr.Notification) bool { return n.Has("WATCHDOG=1") })
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestReloadTimeoutLeavesServiceRunning(t *testing.T) {
	ctx := waitCtx(t)
	// TimeoutStartSec bounds the reload too; it must also let the fake start.
	m := start(t, "deaf", svcmgr.Config{TimeoutStartSec: 2 * time.Second})
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	pid := m.MainPID()
	if err := m.Reload(ctx); !errors.Is(err, svcmgr.ErrReloadTimeout) {
		t.Fatalf("reload: %v, want ErrReloadTimeout", err)
	}
	if m.State() != svcmgr.Active || m.MainPID() != pid || len(m.Exits()) != 0 {
		t.Errorf("after a reload timeout: %s, pid %d (was %d), exits %v; want active, untouched",
			m.State(), m.MainPID(), pid, m.Exits())
	}
	if got := whys(m, svcmgr.Active); !slices.Equal(got, []string{"ready=1", "reload-timeout"}) {
		t.Errorf("active by %v", got)
	}
}

func TestReloadNeedsActive(t *testing.T) {
	ctx := waitCtx(t)
	m := start(t, "never-ready", svcmgr.Config{})
	if err := m.Reload(ctx); !errors.Is(err, svcmgr.ErrState) {
		t.Fatalf("reload while activating: %v, want ErrState", err)
	}
}

func TestNotificationsFromOtherPidsAreIgnored(t *testing.T) {
	ctx := waitCtx(t)
	m := start(t, "foreign", svcmgr.Config{})
	if _, err := m.WaitNotification(ctx, "STATUS=child-done"); err != nil {
		t.Fatal(err)
	}
	ignored := m.Ignored()
	if len(ignored) != 1 || ignored[0].PID == m.MainPID() || !ignored[0].Has("WATCHDOG=trigger") {
		t.Fatalf("ignored %v, want the child's one message", ignored)
	}
	for _, n := range m.Notifications() {
		if n.Has("STATUS=from-child") {
			t.Errorf("the child's message was accepted: %s", n)
		}
	}
	if m.State() != svcmgr.Active || m.Starts() != 1 || len(m.Exits()) != 0 {
		t.Errorf("the child's WATCHDOG=trigger acted: %s, %d starts, exits %v", m.State(), m.Starts(), m.Exits())
	}
}

func TestKillModeProcessLeavesChildren(t *testing.T) {
	ctx := waitCtx(t)
	m := start(t, "child", svcmgr.Config{RestartSec: 10 * time.Millisecond})
	var children []int
	t.Cleanup(func() {
		for _, pid := range children {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	childOf := func(run int) int {
		t.Helper()
		var pid int
		err := m.WaitFor(ctx, fmt.Sprintf("run %d's child", run), func() bool {
			seen := 0
			for _, n := range m.Notifications() {
				if s, ok := n.Get("STATUS"); ok && strings.HasPrefix(s, "child=") {
					if seen++; seen == run {
						pid, _ = strconv.Atoi(strings.TrimPrefix(s, "child="))
						return true
					}
				}
			}
			return false
		})
		if err != nil {
			t.Fatal(err)
		}
		children = append(children, pid)
		return pid
	}
	first := childOf(1)
	main := m.MainPID()

	// The main process crashes: it alone dies, and the next run starts
	// beside the surviving child.
	if err := m.Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitStarts(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if e := m.Exits()[0]; e.PID != main || e.Signal != syscall.SIGKILL || e.Result != svcmgr.ResultSignal {
		t.Errorf("exit %s", e)
	}
	if !proctest.Alive(first) {
		t.Errorf("child %d of the killed main process is gone", first)
	}

	// A stop signals the main process only.
	second := childOf(2)
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if m.State() != svcmgr.Inactive {
		t.Errorf("after stop: %s", m.State())
	}
	for _, pid := range []int{first, second} {
		if !proctest.Alive(pid) {
			t.Errorf("child %d is gone after the stop", pid)
		}
	}
}

func TestStartTimeoutTerminatesAndRestarts(t *testing.T) {
	ctx := waitCtx(t)
	m := start(t, "never-ready", svcmgr.Config{
		TimeoutStartSec: 300 * time.Millisecond,
		RestartSec:      10 * time.Millisecond,
	})
	exits, err := m.WaitExits(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if e := exits[0]; e.Result != svcmgr.ResultTimeout || e.Signal != syscall.SIGTERM {
		t.Fatalf("exit %s, want result timeout after SIGTERM", e)
	}
	if got := whys(m, svcmgr.Deactivating); len(got) == 0 || got[0] != "start-timeout" {
		t.Errorf("deactivating by %v", got)
	}
	if slices.Contains(whys(m, svcmgr.Active), "ready=1") {
		t.Error("became active without READY=1")
	}
	if err := m.WaitStarts(ctx, 2); err != nil {
		t.Fatal(err)
	}
}

func TestStopIsCleanAndFinal(t *testing.T) {
	ctx := waitCtx(t)
	m := start(t, "serve", svcmgr.Config{})
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WaitNotification(ctx, "STOPPING=1"); err != nil {
		t.Error(err)
	}
	exits := m.Exits()
	if len(exits) != 1 || exits[0].Code != 0 || exits[0].Result != svcmgr.ResultSuccess {
		t.Errorf("exits %v, want one clean", exits)
	}
	if m.State() != svcmgr.Inactive || m.Starts() != 1 || m.MainPID() != 0 {
		t.Errorf("after stop: %s, %d starts, main pid %d", m.State(), m.Starts(), m.MainPID())
	}
	if err := m.WaitReady(ctx); !errors.Is(err, svcmgr.ErrState) {
		t.Errorf("WaitReady after stop: %v, want ErrState", err)
	}
}

func TestStartLimitFailsTheUnit(t *testing.T) {
	ctx := waitCtx(t)
	m := start(t, "exit1", svcmgr.Config{
		RestartSec:         10 * time.Millisecond,
		StartLimitBurst:    3,
		StartLimitInterval: time.Hour,
	})
	if err := m.WaitState(ctx, svcmgr.Failed); err != nil {
		t.Fatal(err)
	}
	exits := m.Exits()
	if m.Starts() != 3 || len(exits) != 4 || exits[3].Result != svcmgr.ResultStartLimitHit {
		t.Fatalf("%d starts, exits %v; want 3 and a start-limit-hit", m.Starts(), exits)
	}
	if err := m.WaitReady(ctx); !errors.Is(err, svcmgr.ErrFailed) {
		t.Errorf("WaitReady on a failed unit: %v", err)
	}
}

func TestExecResolvedAtEachStart(t *testing.T) {
	ctx := waitCtx(t)
	root := t.TempDir()
	for _, v := range []string{"a", "b"} {
		if err := os.Mkdir(filepath.Join(root, v), 0o755); err != nil {
			t.Fatal(err)
		}
		copyFile(t, self(t), filepath.Join(root, v, "svc"))
	}
	if err := os.Symlink("a", filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
	}
	m := start(t, "serve", svcmgr.Config{Exec: filepath.Join(root, "current", "svc"), RestartSec: 10 * time.Millisecond})
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	// Point current at b, as an update does, then crash the service.
	if err := os.Symlink("b", filepath.Join(root, "next")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "next"), filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
	}
	if err := m.Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitStarts(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := m.Exits()[0].Exec, filepath.Join(root, "a", "svc"); got != want {
		t.Errorf("first run %s, want %s", got, want)
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", m.MainPID()))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "b", "svc"); exe != want {
		t.Errorf("second run is %s, want %s", exe, want)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	if os.Link(from, to) == nil {
		return
	}
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestMainPIDHandsOver(t *testing.T) {
	ctx := waitCtx(t)
	m := start(t, "mainpid", svcmgr.Config{})
	first := 0
	if err := m.WaitFor(ctx, "a main pid", func() bool { first = m.MainPID(); return first != 0 }); err != nil {
		t.Fatal(err)
	}
	n, err := m.WaitNotification(ctx, "STATUS=successor")
	if err != nil {
		t.Fatal(err)
	}
	successor := n.PID
	if successor == first || m.MainPID() != successor {
		t.Fatalf("main pid %d, first %d, successor %d", m.MainPID(), first, successor)
	}
	t.Cleanup(func() { syscall.Kill(successor, syscall.SIGKILL) })
	// The first process has exited by now or will: that is no exit of the
	// unit's.
	if m.State() != svcmgr.Active || m.Starts() != 1 {
		t.Errorf("after the hand-over: %s, %d starts", m.State(), m.Starts())
	}
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	exits := m.Exits()
	if len(exits) != 1 || exits[0].PID != successor || !exits[0].Unknown || exits[0].Result != svcmgr.ResultSuccess {
		t.Errorf("exits %v, want the successor's, status unknown", exits)
	}
}

func TestStartFailsWhenExecIsMissing(t *testing.T) {
	_, err := svcmgr.Start(t.Context(), svcmgr.Config{Exec: filepath.Join(t.TempDir(), "missing")})
	if err == nil {
		t.Fatal("started a missing program")
	}
}
