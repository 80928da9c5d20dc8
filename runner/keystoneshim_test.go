package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// buildKeystoneShim builds cmd/keystone-shim as a shipped binary is built
// (CGO_ENABLED=0) into dir and returns its path.
func buildKeystoneShim(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, ShimName)
	cmd := exec.Command("go", "build", "-o", out, "github.com/keystone-edge/keystone/cmd/keystone-shim")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build keystone-shim: %v\n%s", err, b)
	}
	return out
}

// The dedicated shim program confines a process exactly as the agent
// re-executed as its shim does: born in its groups in every hierarchy,
// open_files, no_new_privileges and the seccomp filter set before exec,
// and a failure before exec still comes back as a SetupError.
func TestKeystoneShimProgramConfinesTheProcess(t *testing.T) {
	requireRoot(t)
	shimPath := buildKeystoneShim(t, t.TempDir())
	e := newEnvWithShim(t, "", false, shimPath)
	if e.r.shim != shimPath {
		t.Fatalf("runner uses shim %s, want %s", e.r.shim, shimPath)
	}

	const name = "com.example.viashim"
	p := e.start(t, ProcessSpec{Component: name, Command: "/bin/sleep", Args: []string{"300"},
		OpenFiles: 321, NoNewPrivileges: true, Seccomp: SeccompDefault, PidsLimit: 10})
	if got := statusLine(t, p.Pid(), "NoNewPrivs:"); got != "NoNewPrivs:\t1" {
		t.Errorf("%q, want NoNewPrivs:\t1", got)
	}
	if got := statusLine(t, p.Pid(), "Seccomp:"); got != "Seccomp:\t2" {
		t.Errorf("%q, want Seccomp:\t2 (a filter loaded)", got)
	}
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", p.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^Max open files\s+321\s+321\s+files`).Match(limits) {
		t.Errorf("limits:\n%s", limits)
	}
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	requireInGroup(t, e, name, strings.Split(strings.TrimSpace(string(cg)), "\n"))
	p.Stop(context.Background(), StopOptions{})

	// The filter the parent compiled is the one in force.
	got := runSyscallsHelper(t, e, "com.example.viashim-seccomp", SeccompDefault, true)
	for _, call := range []string{"unshare", "mount", "ptrace"} {
		if got[call] != "EPERM" {
			t.Errorf("default profile through keystone-shim: %s = %q, want EPERM", call, got[call])
		}
	}

	_, _, err = e.run(context.Background(), ProcessSpec{Component: "com.example.viashim-nodir", Command: "/bin/true", Dir: "/nonexistent/keystone-test"})
	var se *SetupError
	if !errors.As(err, &se) || se.Step != "chdir" {
		t.Fatalf("err = %v, want a chdir SetupError from keystone-shim", err)
	}
}

// Run by hand (not as a shim) the program says what it is and exits 2.
func TestKeystoneShimProgramRefusesToRunByHand(t *testing.T) {
	shimPath := buildKeystoneShim(t, t.TempDir())
	out, err := exec.Command(shimPath).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "not run by hand") {
		t.Fatalf("err = %v, output %q; want exit 2 and a usage line", err, out)
	}
}

// With no ShimPath the runner takes keystone-shim from beside its own
// executable when that is an executable file, and the running image
// otherwise.
func TestDefaultShimIsKeystoneShimBesideTheExecutable(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "keystone-agent")
	shimPath := filepath.Join(dir, ShimName)
	if got := defaultShim(exe); got != selfExe {
		t.Errorf("no keystone-shim: %s, want %s", got, selfExe)
	}
	if err := os.WriteFile(shimPath, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := defaultShim(exe); got != selfExe {
		t.Errorf("keystone-shim not executable: %s, want %s", got, selfExe)
	}
	if err := os.Chmod(shimPath, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := defaultShim(exe); got != shimPath {
		t.Errorf("executable keystone-shim: %s, want it", got)
	}
	if got := defaultShim(filepath.Join(t.TempDir(), "keystone-agent")); got != selfExe {
		t.Errorf("keystone-shim beside another executable: %s, want %s", got, selfExe)
	}
	if err := os.Remove(shimPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(shimPath, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := defaultShim(exe); got != selfExe {
		t.Errorf("keystone-shim a folder: %s, want %s", got, selfExe)
	}
}
