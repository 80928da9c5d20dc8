package supervisor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/runner"
	"github.com/keystone-edge/keystone/runner/cgroup"
	"github.com/keystone-edge/keystone/runner/logs"
)

// newCgroupRoot returns a cgroup root unique to the caller, removed when
// the test ends. A group still under it then is an error of the test; its
// processes are killed and it is removed, so a failed test leaves nothing
// behind to trouble the next one.
func newCgroupRoot(t testing.TB) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	root := "/keystone-supervisor-test-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		m, err := cgroup.NewManager(cgroup.Config{Root: root})
		if err != nil {
			t.Errorf("cgroup manager for cleanup: %v", err)
			return
		}
		groups, err := m.Groups()
		if err != nil {
			t.Errorf("list groups under %s: %v", root, err)
		}
		for _, gp := range groups {
			t.Errorf("cgroup %s left behind", gp)
			if err := killGroup(m, gp); err != nil {
				t.Errorf("clean up %s: %v", gp, err)
			}
		}
		if err := m.Prune(); err != nil {
			t.Errorf("prune cgroups under %s: %v", root, err)
		}
	})
	return root
}

// killGroup kills what runs in the group, waits until it is empty (up to
// 30 s) and removes it.
func killGroup(m *cgroup.Manager, gp string) error {
	g, err := m.Open(gp)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		pids, err := g.Procs()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return g.Delete()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still there after SIGKILL", pids)
		}
		if err := g.Kill(); err != nil {
			return err
		}
		<-time.After(10 * time.Millisecond) // the killed leave the group as they exit
	}
}

// newRunner returns the real process runner, its logs in logDir and its
// cgroups under root. The test binary is its shim (see TestMain).
func newRunner(t testing.TB, logDir, root string) *runner.Runner {
	t.Helper()
	r, _ := newRunnerWithLogs(t, logDir, root)
	return r
}

// newRunnerWithLogs is newRunner that also returns the component logs.
func newRunnerWithLogs(t testing.TB, logDir, root string) (*runner.Runner, *logs.Manager) {
	t.Helper()
	lm, err := logs.Open(logs.Config{Dir: logDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lm.Close() })
	r, err := runner.New(runner.Config{Logs: lm, Cgroups: cgroup.Config{Root: root}})
	if err != nil {
		t.Fatal(err)
	}
	return r, lm
}

// newLauncher is the launcher the tests use: the real runner, allowed to
// run as root, since the tests run as root and their components name no
// run_as (the refusal of root has tests of its own).
func newLauncher(t testing.TB) *ProcessLauncher {
	return &ProcessLauncher{Runner: newRunner(t, t.TempDir(), newCgroupRoot(t)), AllowRoot: true}
}

// waitLogLine waits (up to 30 s) until the component's output has a line
// containing want: how a test knows a process got as far as it says.
func waitLogLine(t testing.TB, lm *logs.Manager, component, want string) {
	t.Helper()
	l, err := lm.Log(component)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for line := range l.Follow(ctx, -1) {
		if strings.Contains(line.String(), want) {
			return
		}
	}
	t.Fatalf("no line with %q from %s; tail: %v", want, component, l.Tail(20))
}
