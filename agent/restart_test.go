package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/internal/proctest"
	"github.com/keystone-edge/keystone/store"
)

// sleepBase is the first `sleep` argument of the components of the agents
// whose cgroups are under root: unique per root (newCgroupRoot is
// random), so that each one's process is recognisable in /proc and never
// mistaken for one of another test's.
func sleepBase(root string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(root))
	return 1_000_000 + int(h.Sum32()%100_000)*100
}

// sleepers is a deployment of n components com.example.c000…, each
// running `sleep <base+i>` exec'd directly, restarted on failure.
func sleepers(t testing.TB, id string, base, n int) api.DeploymentRequest {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	var comps []string
	files := map[string][]byte{}
	for i := range n {
		name := fmt.Sprintf("com.example.c%03d", i)
		comps = append(comps, name+"@1.0.0")
		files[name+".recipe.toml"] = fmt.Appendf(nil, `format = 1
[metadata]
name = %q
version = "1.0.0"
kind = "process"
[lifecycle.run]
command = %q
args = ["%d"]
restart_policy = "on-failure"
restart_backoff = { initial = "10ms", max = "1s" }
max_restarts = { count = 1000, window = "1m" }
stop_timeout = "5s"
`, name, sleep, base+i)
	}
	return api.DeploymentRequest{Manifest: manifestText(id, comps...), Files: files}
}

// componentProcs maps each component index of the agents whose cgroups
// are under root to the live pids running its `sleep` in /proc.
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
		if err != nil || !proctest.Alive(pid) {
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

// runsOnceUnder checks that each of the n components runs exactly one
// process, a child of the agent pid, and returns them.
func runsOnceUnder(t *testing.T, root string, n, agent int) map[int][]int {
	t.Helper()
	procs := componentProcs(t, root, n)
	for i := range n {
		if len(procs[i]) != 1 {
			t.Fatalf("component %d runs %d times: %v", i, len(procs[i]), procs[i])
		}
		if p := ppid(procs[i][0]); p != agent {
			t.Fatalf("component %d pid %d is a child of %d, not of the agent %d", i, procs[i][0], p, agent)
		}
	}
	return procs
}

// openStore opens the device's store beside its agent.
func openStore(t *testing.T, e *procEnv) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(e.data, "keystone.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// SIGKILL the agent while components run and start it again: each
// component then runs exactly once, as a child of the new agent; the
// processes of the killed agent are stopped (not adopted) before anything
// starts, found by pid and start time in the store.
func TestAgentKilledAndRestartedRunsEachComponentOnce(t *testing.T) {
	const n = 5
	e := newProcEnv(t, "[trust]\nallow_unsigned = true\n")

	// The first agent runs under a reaper host that plays init: the orphans
	// of the killed agent go to it, so a survivor would show up as its
	// child, never as one of the new agent's.
	first := e.start(t, startOptions{hosted: true})
	first.deploy(sleepers(t, "sleepers-1", sleepBase(e.root), n))
	first.settle()
	before := runsOnceUnder(t, e.root, n, first.pid)

	if err := syscall.Kill(first.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.line("agent gone")
	// The components outlive the agent: this is what must be cleaned up.
	for i := range n {
		if !proctest.Alive(before[i][0]) {
			t.Fatalf("component %d died with the agent; the test proves nothing", i)
		}
	}

	second := e.start(t, startOptions{})
	for i := range n {
		waitGone(t, before[i][0])
	}
	second.settle()
	after := runsOnceUnder(t, e.root, n, second.pid)

	// The store knows exactly the new processes.
	st := openStore(t, e)
	recs, err := st.ListProcesses(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n {
		t.Fatalf("store records %d processes, want %d: %+v", len(recs), n, recs)
	}
	for _, rec := range recs {
		i, err := strconv.Atoi(strings.TrimPrefix(rec.Component, "com.example.c"))
		if err != nil || rec.PID != after[i][0] || rec.StartTicks != startTicks(rec.PID) {
			t.Fatalf("record %+v, live pids %v", rec, after)
		}
	}

	// A clean stop leaves nothing running and nothing recorded.
	second.stop()
	for i := range n {
		waitGone(t, after[i][0])
	}
	if recs, err := st.ListProcesses(context.Background()); err != nil || len(recs) != 0 {
		t.Fatalf("records left after a clean stop: %+v (%v)", recs, err)
	}
}

// An agent that dies after starting a process and before recording it
// leaves a process no record names. The next agent sweeps it up from the
// component's cgroup before starting anything and says so: every component
// then runs exactly once, none is stuck on a busy cgroup.
func TestAgentKilledBeforeRecordingRunsEachComponentOnce(t *testing.T) {
	const n = 3
	e := newProcEnv(t, "[trust]\nallow_unsigned = true\n")

	first := e.start(t, startOptions{hosted: true, crashAt: FaultProcessStarted})
	first.deploy(sleepers(t, "sleepers-1", sleepBase(e.root), n))
	first.line("agent gone")
	left := componentProcs(t, e.root, n)
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
	st := openStore(t, e)
	if recs, err := st.ListProcesses(context.Background()); err != nil || len(recs) != 0 {
		t.Fatalf("the crashed agent recorded %+v (%v); the test needs none", recs, err)
	}

	second := e.start(t, startOptions{})
	for _, pids := range left {
		for _, pid := range pids {
			waitGone(t, pid)
		}
	}
	second.settle()
	warnings := second.warnings()
	for i, pids := range left {
		name := fmt.Sprintf("com.example.c%03d", i)
		for _, pid := range pids {
			said := false
			for _, w := range warnings {
				said = said || w.Component == name && strings.Contains(w.Reason, fmt.Sprintf("pid %d (sleep)", pid))
			}
			if !said {
				t.Errorf("no warning names leftover pid %d of %s; warnings: %+v", pid, name, warnings)
			}
		}
	}
	after := runsOnceUnder(t, e.root, n, second.pid)
	second.stop()
	for i := range n {
		waitGone(t, after[i][0])
	}
}

// warnings are the warning events the agent recorded.
func (a *agentProc) warnings() []api.Event {
	a.t.Helper()
	status, body := (&testAgent{t: a.t, http: unixHTTPClient(a.client.Socket())}).do("GET", api.PathEvents+"?limit=10000", nil)
	if status != 200 {
		a.t.Fatalf("events: %d %s", status, body)
	}
	var out []api.Event
	dec := json.NewDecoder(strings.NewReader(string(body)))
	for dec.More() {
		var ev api.Event
		if err := dec.Decode(&ev); err != nil {
			a.t.Fatalf("events: %v", err)
		}
		if ev.Kind == api.EventWarning {
			out = append(out, ev)
		}
	}
	return out
}
