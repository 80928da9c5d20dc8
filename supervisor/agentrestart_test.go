package supervisor

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/store"
)

// Acceptance 6: SIGKILL the agent while components run and start it again:
// each component then runs exactly once, as a child of the new agent; the
// processes of the killed agent are stopped (not adopted) before anything
// starts, found by pid and start time in the store.
func TestAgentKilledAndRestartedRunsEachComponentOnce(t *testing.T) {
	const n = 5
	db := filepath.Join(t.TempDir(), "keystone.db")
	logDir, root := t.TempDir(), newCgroupRoot(t)

	// The first agent runs under a reaper host that plays init: the orphans
	// of the killed agent go to it, so a survivor would show up as its
	// child, never as one of the new agent's.
	first := startMiniAgent(t, db, logDir, root, n, true)
	before := componentProcs(t, root, n)
	for i := 0; i < n; i++ {
		if len(before[i]) != 1 || ppid(before[i][0]) != first.pid {
			t.Fatalf("component %d before: pids %v (agent %d)", i, before[i], first.pid)
		}
	}

	if err := syscall.Kill(first.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, first.pid)
	// The components outlive the agent: this is what must be cleaned up.
	for i := 0; i < n; i++ {
		if !pidAlive(before[i][0]) {
			t.Fatalf("component %d died with the agent; the test proves nothing", i)
		}
	}

	second := startMiniAgent(t, db, logDir, root, n, false)
	for i := 0; i < n; i++ {
		waitGone(t, before[i][0])
	}
	after := componentProcs(t, root, n)
	for i := 0; i < n; i++ {
		if len(after[i]) != 1 {
			t.Fatalf("component %d runs %d times: %v", i, len(after[i]), after[i])
		}
		if p := ppid(after[i][0]); p != second.cmd.Process.Pid {
			t.Fatalf("component %d pid %d is a child of %d, not of the new agent %d", i, after[i][0], p, second.cmd.Process.Pid)
		}
	}

	// The store knows exactly the new processes.
	st, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.ListProcesses(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n {
		t.Fatalf("store records %d processes, want %d", len(recs), n)
	}
	for i, rec := range recs {
		if rec.PID != after[i][0] || rec.StartTicks != procStartTicks(rec.PID) {
			t.Fatalf("record %d: %+v, live pid %d", i, rec, after[i][0])
		}
	}

	// A clean stop leaves nothing running and nothing recorded.
	stopAgentCleanly(t, second, after)
	if recs, _ := st.ListProcesses(context.Background()); len(recs) != 0 {
		t.Fatalf("records left after a clean stop: %+v", recs)
	}
}

// An agent that dies after starting a process and before recording it
// leaves a process no record names. The next agent sweeps it up from the
// component's cgroup before starting anything and says so: every component
// then runs exactly once, none is stuck on a busy cgroup.
func TestAgentKilledBeforeRecordingRunsEachComponentOnce(t *testing.T) {
	const n = 3
	db := filepath.Join(t.TempDir(), "keystone.db")
	logDir, root := t.TempDir(), newCgroupRoot(t)

	first := crashMiniAgent(t, db, logDir, root, n)
	left := componentProcs(t, root, n)
	if len(left) == 0 {
		t.Fatal("no component process outlived the crashed agent; the test proves nothing")
	}
	for i, pids := range left {
		for _, pid := range pids {
			if p := ppid(pid); p != first.cmd.Process.Pid {
				t.Fatalf("component %d pid %d: parent %d, want the reaper host %d", i, pid, p, first.cmd.Process.Pid)
			}
		}
	}
	st, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if recs, err := st.ListProcesses(context.Background()); err != nil || len(recs) != 0 {
		t.Fatalf("the crashed agent recorded %+v (%v); the test needs none", recs, err)
	}

	second := startMiniAgent(t, db, logDir, root, n, false)
	for i, pids := range left {
		name := fmt.Sprintf("com.example.c%03d", i)
		for _, pid := range pids {
			waitGone(t, pid)
			said := false
			for _, w := range second.warnings {
				said = said || strings.HasPrefix(w, name+": ") && strings.Contains(w, fmt.Sprintf("pid %d (sleep)", pid))
			}
			if !said {
				t.Errorf("no warning names leftover pid %d of %s; warnings: %q", pid, name, second.warnings)
			}
		}
	}
	after := componentProcs(t, root, n)
	for i := 0; i < n; i++ {
		if len(after[i]) != 1 {
			t.Fatalf("component %d runs %d times: %v", i, len(after[i]), after[i])
		}
		if p := ppid(after[i][0]); p != second.cmd.Process.Pid {
			t.Fatalf("component %d pid %d is a child of %d, not of the new agent %d", i, after[i][0], p, second.cmd.Process.Pid)
		}
	}

	stopAgentCleanly(t, second, after)
}

// stopAgentCleanly sends the agent SIGTERM, requires a clean exit within a
// minute, and waits until every component process it ran is gone.
func stopAgentCleanly(t *testing.T, a *agentProc, procs map[int][]int) {
	t.Helper()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.exited:
		if a.err != nil {
			t.Fatalf("agent exit: %v", a.err)
		}
	case <-time.After(time.Minute):
		t.Fatal("agent did not stop")
	}
	for _, pids := range procs {
		waitGone(t, pids[0])
	}
}
