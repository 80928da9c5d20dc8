package supervisor

import (
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/keystone-edge/keystone/runner"
	"github.com/keystone-edge/keystone/runner/cgroup"
	"github.com/keystone-edge/keystone/runner/logs"
)

// newCgroupRoot returns a cgroup root unique to the caller, removed (with
// whatever empty groups are left under it) when the test ends.
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
		if err := m.Prune(); err != nil {
			t.Errorf("prune cgroups under %s: %v", root, err)
		}
	})
	return root
}

// newRunner returns the real process runner, its logs in logDir and its
// cgroups under root. The test binary is its shim (see TestMain).
func newRunner(t testing.TB, logDir, root string) *runner.Runner {
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
	return r
}

// newLauncher is the launcher the tests use: the real runner.
func newLauncher(t testing.TB) *ProcessLauncher {
	return &ProcessLauncher{Runner: newRunner(t, t.TempDir(), newCgroupRoot(t))}
}
