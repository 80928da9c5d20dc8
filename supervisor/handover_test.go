package supervisor

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/internal/fakeclock"
	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/runner/cgroup"
)

// The hand-over between two images of the agent process, played by two
// supervisors in one process sharing one runner: what the first freezes,
// the second takes over without starting, stopping or installing anything.
func TestFreezeAndTakeoverKeepProcessesRestartsAndSkipInstall(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	root := newCgroupRoot(t)
	launcher := &ProcessLauncher{Runner: newRunner(t, t.TempDir(), root), AllowRoot: true}
	installs := filepath.Join(t.TempDir(), "installs")
	counted := func(r *recipes.Recipe) {
		r.Lifecycle.Install = &recipes.Script{Script: "echo x >> " + installs}
	}
	a := proc("com.example.a", "exec sleep 1000", counted)
	b := proc("com.example.b", "exec sleep 1000", dependsOn("com.example.a", recipes.DependencyHard))
	gone := proc("com.example.gone", "exec sleep 1000")

	first := newRig(t, clock, Config{Launcher: launcher})
	if err := first.sup.Apply(context.Background(), []*Component{a, b, gone}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Component{a, b, gone} {
		first.w.waitFor(c.Name(), StateRunning, "started")
	}
	// One crash of b, so that there is a restart count to carry over.
	first.kill(t, b.Name())
	first.w.waitFor(b.Name(), StateErrored, "restart 1 in 1s")
	clock.WaitArmed(t, 1)
	clock.Advance(time.Second)
	first.w.waitFor(b.Name(), StateRunning, "started")
	pids := map[string]int{}
	for _, c := range []*Component{a, b, gone} {
		pids[c.Name()] = first.pid(t, c.Name())
	}

	frozen, err := first.sup.Freeze(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	takeover := map[string]Takeover{}
	for _, f := range frozen {
		if f.Process == nil || f.Process.PID != pids[f.Name] {
			t.Fatalf("frozen %s: %+v, want pid %d", f.Name, f.Process, pids[f.Name])
		}
		takeover[f.Name] = Takeover{Version: f.Version, Restarts: f.Restarts, Process: f.Process}
	}
	if takeover[b.Name()].Restarts != 1 {
		t.Fatalf("b froze with %d restarts, want 1", takeover[b.Name()].Restarts)
	}
	if _, err := first.sup.StartComponent(context.Background(), a.Name()); err == nil {
		t.Error("a frozen supervisor took a command")
	}

	second := newRig(t, clock, Config{Launcher: launcher, Reaper: OrphanReaper(launcher.Runner, 0), Takeover: takeover})
	if err := second.sup.Apply(context.Background(), []*Component{a, b}); err != nil {
		t.Fatal(err)
	}
	second.w.waitFor(a.Name(), StateRunning, "started")
	second.w.waitFor(b.Name(), StateRunning, "started")
	for _, c := range []*Component{a, b} {
		st, err := second.sup.Component(c.Name())
		if err != nil {
			t.Fatal(err)
		}
		if st.Pid != pids[c.Name()] {
			t.Errorf("%s: pid %d after the takeover, was %d", c.Name(), st.Pid, pids[c.Name()])
		}
	}
	if st, _ := second.sup.Component(b.Name()); st.Restarts != 1 {
		t.Errorf("b: %d restarts after the takeover, want 1", st.Restarts)
	}
	if got, _ := os.ReadFile(installs); string(got) != "x\n" {
		t.Errorf("install ran %q; want once, before the hand-over", got)
	}
	// Not wanted any more: stopped, reaped and its cgroup removed.
	waitGone(t, pids[gone.Name()])
	waitGroupGone(t, root, gone.Name())

	// The adopted process is managed as any other: a crash restarts it.
	second.kill(t, a.Name())
	second.w.waitFor(a.Name(), StateErrored, "restart 1 in 1s")
}

// waitGroupGone waits (up to 30 s) until the component's cgroup under root
// is removed.
func waitGroupGone(t *testing.T, root, component string) {
	t.Helper()
	m, err := cgroup.NewManager(cgroup.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		groups, err := m.Groups()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(groups, root+"/"+component) {
			return
		}
	}
	t.Fatalf("cgroup of %s still there", component)
}
