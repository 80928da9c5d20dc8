package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// After the agent itself is SIGKILLed, a new agent finds the component it
// had started by its Record and stops all of it: nothing runs twice, nothing
// is left unmanaged.
func TestStopOrphanAfterAgentIsKilled(t *testing.T) {
	requireRoot(t)
	root := uniqueRoot()
	rec, members := killedAgentHelper(t, root)

	e := newEnv(t, root, false)
	// A start while the orphans still run is refused rather than doubled.
	if _, _, err := e.run(context.Background(), ProcessSpec{Component: orphanCompName, Command: "/bin/true"}); err == nil {
		t.Fatal("a second copy started beside the orphan")
	}
	res, err := e.r.StopOrphan(context.Background(), rec, StopOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Found || res.Processes != 2 || res.Forced {
		t.Fatalf("result = %+v", res)
	}
	for _, m := range members {
		if alive(m.PID) {
			t.Fatalf("pid %d survived StopOrphan", m.PID)
		}
		waitGone(t, m.PID)
	}
	cgroupDirsGone(t, e, rec.CgroupPath)

	again, err := e.r.StopOrphan(context.Background(), rec, StopOptions{})
	if err != nil || again.Found {
		t.Fatalf("second StopOrphan: %+v, %v", again, err)
	}
	// Now the component can start afresh.
	p := e.start(t, ProcessSpec{Component: orphanCompName, Command: "/bin/true"})
	if st := p.Wait(); !st.Success() {
		t.Fatalf("fresh start: %+v", st)
	}
}

// A record whose pid now belongs to another process (another start time)
// must not touch that process.
func TestStopOrphanLeavesReusedPidAlone(t *testing.T) {
	e := newEnv(t, "", false)
	other := exec.Command("/bin/sleep", "300")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })
	ticks, err := ProcStartTicks(other.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	rec := Record{Component: "com.example.gone", PID: other.Process.Pid, StartTicks: ticks - 1, PGID: other.Process.Pid}
	res, err := e.r.StopOrphan(context.Background(), rec, StopOptions{Signal: 9})
	if err != nil || res.Found || res.Processes != 0 {
		t.Fatalf("result = %+v, %v", res, err)
	}
	if !alive(other.Process.Pid) {
		t.Fatal("StopOrphan killed a process that merely reuses the recorded pid")
	}

	// A cgroup path outside the runner's root is refused, never opened.
	rec.CgroupPath = "/system.slice"
	if _, err := e.r.StopOrphan(context.Background(), rec, StopOptions{}); err == nil || !strings.Contains(err.Error(), "not under") {
		t.Fatalf("foreign cgroup: %v", err)
	}
	if !alive(other.Process.Pid) {
		t.Fatal("killed by a foreign cgroup path")
	}
}

// killedAgentHelper runs an agent helper that starts the orphan component
// under root, waits until both of its processes run, then SIGKILLs the
// agent and returns the component's Record and processes, still running.
func killedAgentHelper(t *testing.T, root string) (Record, []member) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	agent := exec.Command(self)
	agent.Env = append(os.Environ(), helperEnv+"="+helperAgent, helperLogsEnv+"="+t.TempDir(), helperRootEnv+"="+root)
	stdin, err := agent.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := agent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	agent.Stderr = os.Stderr
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = agent.Process.Kill()
		_ = agent.Wait()
		t.Fatalf("agent helper: %v", err)
	}
	var rec Record
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Component != orphanCompName || rec.PGID != rec.PID || rec.CgroupPath != root+"/"+orphanCompName {
		t.Fatalf("record = %+v", rec)
	}
	// The script forks its background sleep before exec'ing the second one;
	// wait until both are there, and both are sleep (the forked child is
	// "sh" until its own exec), rather than racing the fork.
	var members []member
	deadline := time.Now().Add(30 * time.Second)
	sleeping := func(ms []member) bool {
		for _, m := range ms {
			if st, err := readStat(m.PID); err != nil || st.Comm != "sleep" {
				return false
			}
		}
		return true
	}
	for {
		members, err = groupMembers(rec.PGID, rec.StartTicks)
		if err == nil && len(members) == 2 && sleeping(members) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("component processes before the crash: %v, %v", members, err)
		}
		<-time.After(10 * time.Millisecond)
	}

	// The agent dies hard; its component keeps running, unmanaged.
	if err := agent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = agent.Wait()
	for _, m := range members {
		if !alive(m.PID) {
			t.Fatalf("pid %d died with the agent; the test proves nothing", m.PID)
		}
	}
	return rec, members
}
