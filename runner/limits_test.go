package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/runner/cgroup"
)

// Acceptance 5: a child allocating past memory_limit is OOM-killed and the
// exit reason says so.
func TestMemoryLimitOOMKillIsTheExitReason(t *testing.T) {
	onBothStartPaths(t, testMemoryLimitOOMKillIsTheExitReason)
}

func testMemoryLimitOOMKillIsTheExitReason(t *testing.T, e *testEnv) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := e.start(t, ProcessSpec{
		Component: "com.example.hog", Command: self, Env: []string{helperEnv + "=" + helperAlloc},
		MemoryLimitBytes: 64 << 20,
	})
	st := p.Wait()
	if !st.OOMKilled || st.Signal != "SIGKILL" || st.Success() {
		t.Fatalf("status = %+v; log:\n%s", st, e.tail(t, "com.example.hog"))
	}
	if !strings.HasPrefix(st.Reason(), "OOM-killed") {
		t.Errorf("reason = %q", st.Reason())
	}
	if strings.Contains(e.tail(t, "com.example.hog"), "allocated") {
		t.Error("the hog got all its memory: the limit was not applied")
	}
}

// Acceptance 5: pids_limit stops a (bounded) fork bomb inside the cgroup.
func TestPidsLimitStopsForkBomb(t *testing.T) { onBothStartPaths(t, testPidsLimitStopsForkBomb) }

func testPidsLimitStopsForkBomb(t *testing.T, e *testEnv) {
	const limit = 12
	p := e.start(t, ProcessSpec{
		Component: "com.example.forks", PidsLimit: limit,
		// The inner shell forks until it cannot (dash gives up at the first
		// failed fork); the outer one reports and stays, without forking.
		Script: `sh -c 'i=0; while [ $i -lt 60 ]; do sleep 300 & i=$((i+1)); done; echo "bomb survived $i"'
echo "bomb ended"; exec sleep 300`,
	})
	e.waitLine(t, "com.example.forks", "bomb ended")
	// stderr is read by a goroutine of its own: its line may come after
	// stdout's.
	e.waitLine(t, "com.example.forks", "Cannot fork")
	cg := p.CgroupPath()
	current, err := strconv.Atoi(readCgroupFile(t, e, cg, "pids.current"))
	if err != nil || current > limit {
		t.Fatalf("pids.current = %d (%v), limit %d", current, err, limit)
	}
	if got := readCgroupFile(t, e, cg, "pids.max"); got != strconv.Itoa(limit) {
		t.Fatalf("pids.max = %s", got)
	}
	st, err := p.Stats(context.Background())
	if err != nil || st.Processes > limit || st.Processes < limit-2 {
		t.Fatalf("stats = %+v, %v: want the group filled up to about %d", st, err, limit)
	}
	if out := e.tail(t, "com.example.forks"); !strings.Contains(out, "Cannot fork") || strings.Contains(out, "bomb survived") {
		t.Fatalf("want the fork bomb stopped by a failed fork:\n%s", out)
	}
	pgid := p.Pgid()
	if s := p.Stop(context.Background(), StopOptions{Timeout: 5 * time.Second}); !s.Stopped {
		t.Fatalf("status = %+v", s)
	}
	if ms, _ := groupMembers(pgid, 0); len(ms) != 0 {
		t.Fatalf("fork bomb survivors: %v", ms)
	}
	cgroupDirsGone(t, e, cg)
}

func TestCPUQuotaIsApplied(t *testing.T) {
	e := newEnv(t, "", false)
	p := e.start(t, ProcessSpec{Component: "com.example.cpu", Command: "/bin/sleep", Args: []string{"300"}, CPUQuotaPercent: 40})
	var got string
	switch e.r.CgroupMode() {
	case cgroup.ModeUnified:
		got = readCgroupFile(t, e, p.CgroupPath(), "cpu.max")
	default:
		got = readCgroupFile(t, e, p.CgroupPath(), "cpu.cfs_quota_us") + " " + readCgroupFile(t, e, p.CgroupPath(), "cpu.cfs_period_us")
	}
	if got != "40000 100000" {
		t.Fatalf("cpu quota = %q, want 40000 of 100000", got)
	}
}

// Acceptance 5: open_files is visible in /proc/PID/limits.
func TestOpenFilesRlimitIsSetInTheChild(t *testing.T) {
	e := newEnv(t, "", false)
	p := e.start(t, ProcessSpec{Component: "com.example.nofile", Command: "/bin/sleep", Args: []string{"300"}, OpenFiles: 321})
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", p.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^Max open files\s+321\s+321\s+files`).Match(limits) {
		t.Fatalf("limits:\n%s", limits)
	}
}

// Acceptance 5: no_new_privileges is visible in /proc/PID/status.
func TestNoNewPrivilegesIsSetOnlyWhenAsked(t *testing.T) {
	onBothStartPaths(t, testNoNewPrivilegesIsSetOnlyWhenAsked)
}

func testNoNewPrivilegesIsSetOnlyWhenAsked(t *testing.T, e *testEnv) {
	for _, nnp := range []bool{true, false} {
		p := e.start(t, ProcessSpec{Component: fmt.Sprintf("com.example.nnp-%v", nnp), Command: "/bin/sleep", Args: []string{"300"}, NoNewPrivileges: nnp})
		want := "NoNewPrivs:\t0"
		if nnp {
			want = "NoNewPrivs:\t1"
		}
		if got := statusLine(t, p.Pid(), "NoNewPrivs:"); got != want {
			t.Errorf("no_new_privileges=%v: %q, want %q", nnp, got, want)
		}
		p.Stop(context.Background(), StopOptions{})
	}
}

func statusLine(t *testing.T, pid int, prefix string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	t.Fatalf("no %s in status of %d", prefix, pid)
	return ""
}

// testAccount creates a system user with a primary and a supplementary
// group, removed after the test.
func testAccount(t *testing.T) (name, primary, extra string) {
	t.Helper()
	requireRoot(t)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name = "ksrt" + hex.EncodeToString(b)
	primary, extra = name, name+"x"
	run := func(args ...string) {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	run("groupadd", "--system", primary)
	t.Cleanup(func() { _ = exec.Command("groupdel", primary).Run() })
	run("groupadd", "--system", extra)
	t.Cleanup(func() { _ = exec.Command("groupdel", extra).Run() })
	run("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
		"--gid", primary, "--groups", extra, name)
	t.Cleanup(func() { _ = exec.Command("userdel", name).Run() })
	return name, primary, extra
}

// Acceptance 5: run_as runs as that uid/gid with supplementary groups
// cleared.
func TestRunAsTakesUserAndGroupAndClearsSupplementaryGroups(t *testing.T) {
	onBothStartPaths(t, testRunAsTakesUserAndGroupAndClearsSupplementaryGroups)
}

func testRunAsTakesUserAndGroupAndClearsSupplementaryGroups(t *testing.T, e *testEnv) {
	name, primary, extra := testAccount(t)
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	gPrimary, _ := user.LookupGroup(primary)
	gExtra, _ := user.LookupGroup(extra)
	if g := statusLine(t, os.Getpid(), "Groups:"); g == "Groups:" {
		t.Fatal("the test agent has no supplementary groups, so clearing them would prove nothing")
	}

	for _, tc := range []struct{ runAs, gid string }{
		{name + ":" + extra, gExtra.Gid}, // a named group wins over the primary one
		{name, gPrimary.Gid},             // the user alone: its primary group
	} {
		p := e.start(t, ProcessSpec{Component: "com.example.runas", Script: `echo "home=$HOME user=$USER"; exec sleep 300`, RunAs: tc.runAs})
		e.waitLine(t, "com.example.runas", "home=")
		want := map[string]string{
			"Uid:":    fmt.Sprintf("Uid:\t%s\t%s\t%s\t%s", u.Uid, u.Uid, u.Uid, u.Uid),
			"Gid:":    fmt.Sprintf("Gid:\t%s\t%s\t%s\t%s", tc.gid, tc.gid, tc.gid, tc.gid),
			"Groups:": "Groups:",
		}
		for prefix, w := range want {
			if got := strings.TrimRight(statusLine(t, p.Pid(), prefix), " \t"); got != w {
				t.Errorf("run_as %s: %q, want %q", tc.runAs, got, w)
			}
		}
		if out := e.tail(t, "com.example.runas"); !strings.Contains(out, "home=/nonexistent user="+name) {
			t.Errorf("run_as %s: environment: %s", tc.runAs, out)
		}
		p.Stop(context.Background(), StopOptions{})
		_ = e.logs.Remove("com.example.runas")
	}

	// A directory the user may not enter fails at chdir, as that user.
	private := t.TempDir() // 0700 root
	_, _, err = e.run(context.Background(), ProcessSpec{Component: "com.example.private", Command: "/bin/true", RunAs: name, Dir: private})
	var se *SetupError
	if !errors.As(err, &se) || se.Step != "chdir" || !strings.Contains(se.Error(), "permission denied") {
		t.Fatalf("err = %v, want a chdir SetupError", err)
	}
}

// The program starts inside its component's groups in every hierarchy:
// its first action, reading its own /proc/self/cgroup, already shows them
// (cloned into the v2 group, and its thread moved into each v1 group by
// the shim before exec).
func TestProgramStartsInItsGroupInEveryHierarchy(t *testing.T) {
	onBothStartPaths(t, testProgramStartsInItsGroupInEveryHierarchy)
}

func testProgramStartsInItsGroupInEveryHierarchy(t *testing.T, e *testEnv) {
	if e.r.CgroupMode() == cgroup.ModeUnavailable {
		t.Fatal("this host has cgroups; the runner's acceptance depends on them")
	}
	const name = "com.example.where"
	p := e.start(t, ProcessSpec{Component: name, Command: "/bin/cat", Args: []string{"/proc/self/cgroup"}, PidsLimit: 10})
	if st := p.Wait(); !st.Success() {
		t.Fatalf("status = %+v", st)
	}
	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(e.tail(t, name)), "\n") {
		lines = append(lines, line[strings.IndexByte(line, ' ')+1:]) // "<time> 4:cpu:/..."
	}
	requireInGroup(t, e, name, lines)
}

// requireInGroup fails unless the lines of a /proc/PID/cgroup (such as
// "4:cpu:/keystone-test-x/com.example.where") put the process in the
// component's group in every hierarchy the runner uses.
func requireInGroup(t *testing.T, e *testEnv, name string, lines []string) {
	t.Helper()
	want := e.root + "/" + name
	seen := map[string]bool{}
	for _, line := range lines {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			t.Fatalf("line %q", line)
		}
		for _, ctrl := range strings.Split(f[1], ",") {
			switch ctrl {
			case "", "cpu", "cpuacct", "memory", "pids":
				if f[2] != want {
					t.Errorf("%q hierarchy: in %s, want %s", ctrl, f[2], want)
				}
				seen[ctrl] = true
			}
		}
	}
	need := []string{"cpu", "cpuacct", "memory", "pids"}
	switch e.r.CgroupMode() {
	case cgroup.ModeUnified:
		need = []string{""}
	case cgroup.ModeHybrid:
		need = append(need, "")
	}
	for _, ctrl := range need {
		if !seen[ctrl] {
			t.Errorf("no %q line in /proc/PID/cgroup:\n%s", ctrl, strings.Join(lines, "\n"))
		}
	}
}
