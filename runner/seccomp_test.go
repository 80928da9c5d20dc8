package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/sys/unix"
)

// runSyscallsHelper runs the syscalls helper as a component under profile
// and returns what it printed, one "call=result" a line.
func runSyscallsHelper(t *testing.T, e *testEnv, component, profile string, nnp bool) map[string]string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := e.start(t, ProcessSpec{Component: component, Command: self, Env: []string{helperEnv + "=" + helperSyscalls},
		Seccomp: profile, NoNewPrivileges: nnp})
	if st := p.Wait(); !st.Success() {
		t.Fatalf("helper under %q: %+v; log:\n%s", profile, st, e.tail(t, component))
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(e.tail(t, component)), "\n") {
		k, v, ok := strings.Cut(line[strings.IndexByte(line, ' ')+1:], "=")
		if ok {
			got[k] = v
		}
	}
	return got
}

// Under "default" (with or without no_new_privileges) unshare, mount and
// ptrace are refused with EPERM; "unconfined" lets them reach the kernel.
func TestSeccompDefaultRefusesAndUnconfinedDoesNot(t *testing.T) {
	onBothStartPaths(t, testSeccompDefaultRefusesAndUnconfinedDoesNot)
}

func testSeccompDefaultRefusesAndUnconfinedDoesNot(t *testing.T, e *testEnv) {
	for _, nnp := range []bool{true, false} {
		got := runSyscallsHelper(t, e, "com.example.confined", SeccompDefault, nnp)
		for _, call := range []string{"unshare", "mount", "ptrace"} {
			if got[call] != "EPERM" {
				t.Errorf("default (no_new_privileges %v): %s = %q, want EPERM", nnp, call, got[call])
			}
		}
	}
	got := runSyscallsHelper(t, e, "com.example.free", SeccompUnconfined, true)
	for call, want := range map[string]string{"unshare": "ok", "mount": "ENOENT", "ptrace": "ESRCH"} {
		if got[call] != want {
			t.Errorf("unconfined: %s = %q, want %s (the kernel's own answer)", call, got[call], want)
		}
	}
}

// A path: profile in the Docker format is applied as written, and one
// KeyStone cannot honour exactly is refused before anything starts.
func TestSeccompPathProfile(t *testing.T) {
	e := newEnv(t, "", false)
	dir := t.TempDir()
	profile := filepath.Join(dir, "deny-unshare.json")
	err := os.WriteFile(profile, []byte(`{
  "defaultAction": "SCMP_ACT_ALLOW",
  "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
  "syscalls": [
    {"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "comment": "EACCES, to tell it from default"},
    {"names": ["no_such_call_anywhere"], "action": "SCMP_ACT_ERRNO"}
  ]
}`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	got := runSyscallsHelper(t, e, "com.example.profiled", SeccompPathPrefix+profile, true)
	if got["unshare"] != "EACCES" || got["mount"] != "ENOENT" || got["ptrace"] != "ESRCH" {
		t.Fatalf("under %s: %v", profile, got)
	}

	for name, text := range map[string]string{
		"args.json":     `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}`,
		"includes.json": `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mount"],"action":"SCMP_ACT_ERRNO","includes":{"caps":["CAP_SYS_ADMIN"]}}]}`,
		"notify.json":   `{"defaultAction":"SCMP_ACT_NOTIFY","syscalls":[]}`,
		"unknown.json":  `{"defaultAction":"SCMP_ACT_ALLOW","syscals":[]}`,
	} {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err := e.run(context.Background(), ProcessSpec{Component: "com.example.refused", Command: "/bin/true", Seccomp: SeccompPathPrefix + f})
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v, want a refusal naming the file", name, err)
		}
	}
	if _, _, err := e.run(context.Background(), ProcessSpec{Component: "com.example.refused", Command: "/bin/true", Seccomp: "strict"}); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("unknown profile name: %v", err)
	}
	cgroupDirsGone(t, e, e.root+"/com.example.refused")
}

// The compiled program, run through a small interpreter of the classic BPF
// it uses: the deny-list holds for the native ABI and the compat one (i386
// on x86_64, arm on arm64), x32 calls get ENOSYS, any other ABI is killed.
func TestSeccompProgramCoversEveryABI(t *testing.T) {
	prog, err := compileSeccomp(defaultSeccompPolicy())
	if err != nil {
		t.Fatal(err)
	}
	native, err := arch.GetInfo("")
	if err != nil {
		t.Fatal(err)
	}
	eperm, enosys := errnoAction(uint(unix.EPERM)), errnoAction(uint(unix.ENOSYS))
	check := func(abi *arch.Info, call string, nr uint32, want uint32) {
		t.Helper()
		if got := runBPF(t, prog, nr, uint32(abi.ID)); got != want {
			t.Errorf("%s %s (%d): %#x, want %#x", abi.Name, call, nr, got, want)
		}
	}
	abis := []*arch.Info{native}
	if c := compatArch(native); c != nil {
		abis = append(abis, c)
	}
	for _, abi := range abis {
		for _, call := range []string{"mount", "ptrace", "unshare", "bpf"} {
			check(abi, call, uint32(abi.SyscallNames[call]), eperm)
		}
		for _, call := range []string{"read", "write", "execve", "openat"} {
			if nr, ok := abi.SyscallNames[call]; ok {
				check(abi, call, uint32(nr), unix.SECCOMP_RET_ALLOW)
			}
		}
	}
	if native.ID == arch.X86_64.ID {
		check(native, "x32 mount", uint32(arch.X32.SyscallNames["mount"]|arch.X32.SeccompMask), enosys)
	}
	check(&arch.Info{Name: "foreign", ID: arch.S390X.ID}, "mount", 21, unix.SECCOMP_RET_KILL_PROCESS)
}

// runBPF runs a seccomp filter on a system call number and audit arch, as
// the kernel would, for the instructions compileSeccomp emits.
func runBPF(t *testing.T, prog []unix.SockFilter, nr, auditArch uint32) uint32 {
	t.Helper()
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			switch in.K {
			case seccompNr:
				acc = nr
			case seccompArch:
				acc = auditArch
			default:
				t.Fatalf("load of offset %d", in.K)
			}
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
			if acc == in.K {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
			if acc >= in.K {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.K)
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		default:
			t.Fatalf("instruction %d: unexpected code %#x", pc, in.Code)
		}
	}
	t.Fatal("program ran off its end")
	return 0
}
