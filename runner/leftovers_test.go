package runner

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/runner/cgroup"
)

// An agent that dies before recording what it started leaves processes
// that no Record names. The sweep at the next agent's start finds them in
// the component's cgroup, stops them, says what it found, and removes every
// group under the root, so that the component can start again at once.
func TestSweepLeftoversStopsUnrecordedProcesses(t *testing.T) {
	requireRoot(t)
	root := uniqueRoot()
	rec, members := killedAgentHelper(t, root) // the Record is ignored: as if it was never written

	e := newEnv(t, root, false)
	// An empty group left by a start that never got as far as exec.
	if _, _, err := e.r.cgroups.Create("com.example.empty", cgroup.Limits{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.run(context.Background(), ProcessSpec{Component: orphanCompName, Command: "/bin/true"}); !errors.Is(err, cgroup.ErrBusy) {
		t.Fatalf("start beside the leftover: %v, want cgroup.ErrBusy", err)
	}

	found, err := e.r.SweepLeftovers(context.Background(), StopOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 {
		t.Fatalf("found %+v, want the orphan's group only", found)
	}
	lo := found[0]
	if lo.Component != orphanCompName || lo.CgroupPath != rec.CgroupPath || lo.Forced {
		t.Fatalf("leftover = %+v", lo)
	}
	var pids []int
	for _, p := range lo.Processes {
		if p.Name != "sleep" {
			t.Errorf("process %+v: want the name sleep", p)
		}
		pids = append(pids, p.PID)
	}
	for _, m := range members {
		if !slices.Contains(pids, m.PID) {
			t.Errorf("leftover pid %d not reported (reported %v)", m.PID, pids)
		}
		waitGone(t, m.PID)
	}
	groups, err := e.r.cgroups.Groups()
	if err != nil || len(groups) != 0 {
		t.Fatalf("groups after the sweep: %v, %v", groups, err)
	}

	// The component starts again at once, and a second sweep finds nothing.
	p := e.start(t, ProcessSpec{Component: orphanCompName, Command: "/bin/true"})
	if st := p.Wait(); !st.Success() {
		t.Fatalf("fresh start: %+v", st)
	}
	again, err := e.r.SweepLeftovers(context.Background(), StopOptions{})
	if err != nil || len(again) != 0 {
		t.Fatalf("second sweep: %+v, %v", again, err)
	}
}

// A sweep while the runner's own processes run would kill them: refused.
func TestSweepLeftoversRefusesWhileProcessesRun(t *testing.T) {
	e := newEnv(t, "", false)
	p := e.start(t, ProcessSpec{Component: "com.example.live", Command: "/bin/sleep", Args: []string{"300"}})
	if _, err := e.r.SweepLeftovers(context.Background(), StopOptions{}); !errors.Is(err, ErrLiveProcesses) {
		t.Fatalf("sweep with a live process: %v, want ErrLiveProcesses", err)
	}
	if !alive(p.Pid()) {
		t.Fatal("the refused sweep killed a live component")
	}
	p.Stop(context.Background(), StopOptions{Signal: 9})
	if _, err := e.r.SweepLeftovers(context.Background(), StopOptions{}); err != nil {
		t.Fatalf("sweep once it has stopped: %v", err)
	}
	if _, err := os.Stat(e.r.cgroups.Dirs(p.CgroupPath())[0]); err == nil {
		t.Fatal("group still there after the sweep")
	}
}
