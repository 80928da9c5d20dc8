package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/runner/cgroup"
	"github.com/keystone-edge/keystone/runner/logs"
	"golang.org/x/sys/unix"
)

// The test binary doubles as the shim and as helper processes.
const (
	helperEnv      = "RUNNER_TEST_HELPER"
	helperLogsEnv  = "RUNNER_TEST_LOGS"
	helperRootEnv  = "RUNNER_TEST_CGROUP_ROOT"
	helperAlloc    = "alloc"    // allocate and touch memory until killed
	helperAgent    = "agent"    // start a component, print its Record, block until killed
	helperSyscalls = "syscalls" // try system calls seccomp "default" refuses, print what each returned
	orphanScript   = `sleep 300 & exec sleep 301`
	orphanCompName = "com.example.orphan"
)

func TestMain(m *testing.M) {
	if IsShim(os.Args) {
		ShimMain()
	}
	switch os.Getenv(helperEnv) {
	case helperAlloc:
		allocHelper()
	case helperAgent:
		agentHelper()
	case helperSyscalls:
		syscallsHelper()
	}
	os.Exit(m.Run())
}

// allocHelper grows its memory in touched 1 MiB pieces, far past any test
// limit, then exits 0 (which a working memory_limit never lets it reach).
func allocHelper() {
	var keep [][]byte
	for range 1024 {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		keep = append(keep, b)
	}
	fmt.Println("allocated", len(keep), "MiB")
	os.Exit(0)
}

// syscallsHelper tries, harmlessly, system calls that the "default"
// seccomp profile refuses, and prints what each returned: "unshare=EPERM"
// when refused, another result when the call reached the kernel. Each is
// made so that the kernel itself would fail it or leave nothing changed:
// unshare of nothing, a mount on a folder that does not exist, a ptrace
// attach to a pid that cannot exist.
func syscallsHelper() {
	name := func(err error) string {
		if err == nil {
			return "ok"
		}
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return unix.ErrnoName(errno)
		}
		return err.Error()
	}
	fmt.Printf("unshare=%s\n", name(unix.Unshare(0)))
	fmt.Printf("mount=%s\n", name(unix.Mount("none", "/nonexistent/keystone-test-mount", "tmpfs", 0, "")))
	fmt.Printf("ptrace=%s\n", name(unix.PtraceAttach(1<<22+1)))
	os.Exit(0)
}

// agentHelper plays an agent that is later SIGKILLed: it starts one
// component, prints its Record on stdout and blocks until stdin closes.
func agentHelper() {
	lm, err := logs.Open(logs.Config{Dir: os.Getenv(helperLogsEnv)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	r, err := New(Config{Logs: lm, Cgroups: cgroup.Config{Root: os.Getenv(helperRootEnv)}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	p, _, err := r.Start(context.Background(), ProcessSpec{Component: orphanCompName, Script: orphanScript, PidsLimit: 50, AllowRoot: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	_ = json.NewEncoder(os.Stdout).Encode(p.Record())
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// testEnv is a Runner with its own log directory and cgroup root.
type testEnv struct {
	r      *Runner
	logs   *logs.Manager
	root   string
	logDir string
	// path, when set, is the way e.start must have started every process:
	// "direct" (the spawner thread) or "shim".
	path string
}

// onBothStartPaths runs test twice, on a fresh environment each time:
// with processes started directly from the spawner thread where the spec
// allows it, and with every process started through the shim. Each
// process e.start starts is checked to have taken that path, so that the
// confinements a test checks are proved for both.
func onBothStartPaths(t *testing.T, test func(t *testing.T, e *testEnv)) {
	for _, path := range []string{"direct", "shim"} {
		t.Run(path, func(t *testing.T) {
			e := newEnv(t, "", false)
			e.path = path
			if path == "shim" {
				e.r.noDirect.Store(true)
			}
			test(t, e)
		})
	}
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: the runner's tests start confined processes (cgroups, setuid) and need root")
	}
}

func uniqueRoot() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "/keystone-test-" + hex.EncodeToString(b)
}

// newEnv builds a Runner; root "" gets a fresh cgroup root.
func newEnv(t testing.TB, root string, disabled bool) *testEnv {
	t.Helper()
	return newEnvWithShim(t, root, disabled, "")
}

// newEnvWithShim is newEnv with Config.ShimPath set to shimPath ("" = the
// default: this test binary).
func newEnvWithShim(t testing.TB, root string, disabled bool, shimPath string) *testEnv {
	t.Helper()
	requireRoot(t)
	if root == "" {
		root = uniqueRoot()
	}
	dir := t.TempDir()
	lm, err := logs.Open(logs.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{ShimPath: shimPath, Logs: lm, Cgroups: cgroup.Config{Root: root, Disabled: disabled}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = lm.Close()
		sweepLeftovers(t, r, root)
		if err := r.cgroups.Prune(); err != nil {
			t.Errorf("prune cgroups: %v", err)
		}
		for _, d := range r.cgroups.Dirs(root) {
			if _, err := os.Stat(d); err == nil {
				t.Errorf("cgroup %s left behind", d)
			}
		}
	})
	return &testEnv{r: r, logs: lm, root: root, logDir: dir}
}

// run is Start with root allowed: the tests run as root and, but for the
// root refusal's own tests, start processes as the agent.
func (e *testEnv) run(ctx context.Context, spec ProcessSpec) (*Process, []Warning, error) {
	spec.AllowRoot = true
	return e.r.Start(ctx, spec)
}

func (e *testEnv) start(t testing.TB, spec ProcessSpec) *Process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, _, err := e.run(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(context.Background(), StopOptions{Signal: 9}) })
	if via := map[bool]string{true: "shim", false: "direct"}[p.shim]; e.path != "" && via != e.path {
		t.Fatalf("%s was started %s, want %s", spec.Component, via, e.path)
	}
	return p
}

// waitLine follows the component's log until a line contains want and
// returns that line.
func (e *testEnv) waitLine(t testing.TB, component, want string) string {
	t.Helper()
	l, err := e.logs.Log(component)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for line := range l.Follow(ctx, -1) {
		if strings.Contains(line.String(), want) {
			return line.String()
		}
	}
	t.Fatalf("no line with %q in the log of %s; tail: %v", want, component, l.Tail(20))
	return ""
}

// tail returns the component's recent lines as text.
func (e *testEnv) tail(t testing.TB, component string) string {
	t.Helper()
	l, err := e.logs.Log(component)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, line := range l.Tail(0) {
		b.WriteString(line.String() + "\n")
	}
	return b.String()
}

// pidAfter parses the number after prefix in a log line ("child 123").
func pidAfter(t testing.TB, line, prefix string) int {
	t.Helper()
	_, rest, ok := strings.Cut(line, prefix)
	if !ok {
		t.Fatalf("no %q in %q", prefix, line)
	}
	n, err := strconv.Atoi(strings.Fields(rest)[0])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	st, err := readStat(pid)
	return err == nil && st.State != 'Z'
}

// waitGone waits until /proc/PID is gone: a dead process that is not our
// child is reaped by init, which may take a moment.
func waitGone(t testing.TB, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := os.Stat("/proc/" + strconv.Itoa(pid))
		if os.IsNotExist(err) {
			return
		}
		if alive(pid) {
			t.Fatalf("pid %d is still running", pid)
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still a zombie after 30s", pid)
		}
		// A zombie of init's: wait for init to reap it.
		<-time.After(20 * time.Millisecond)
	}
}

// cgroupDirsGone fails when any hierarchy still has the group.
func cgroupDirsGone(t testing.TB, e *testEnv, groupPath string) {
	t.Helper()
	if groupPath == "" {
		t.Fatal("no cgroup path")
	}
	for _, d := range e.r.cgroups.Dirs(groupPath) {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("cgroup %s still exists", d)
		}
	}
}

// readCgroupFile reads a file of the group in the first hierarchy that has it.
func readCgroupFile(t testing.TB, e *testEnv, groupPath, name string) string {
	t.Helper()
	for _, d := range e.r.cgroups.Dirs(groupPath) {
		if b, err := os.ReadFile(filepath.Join(d, name)); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	t.Fatalf("no %s in any hierarchy of %s", name, groupPath)
	return ""
}

// sweepLeftovers fails the test for every component group still under
// root, and kills and removes it so that a failed run leaves the machine
// clean.
func sweepLeftovers(t testing.TB, r *Runner, root string) {
	t.Helper()
	seen := map[string]bool{}
	for _, d := range r.cgroups.Dirs(root) {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if e.IsDir() && !seen[e.Name()] {
				seen[e.Name()] = true
			}
		}
	}
	for name := range seen {
		t.Errorf("cgroup %s/%s left behind", root, name)
		g, err := r.cgroups.Open(root + "/" + name)
		if err != nil {
			continue
		}
		if _, err := (targets{group: g}).killAll(5 * time.Second); err != nil {
			t.Errorf("kill leftovers: %v", err)
		}
		if err := g.Delete(); err != nil {
			t.Errorf("remove leftover group: %v", err)
		}
	}
}
