package runner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/sys/unix"
)

// Seccomp profiles, as security.seccomp_profile names them.
const (
	SeccompDefault    = "default"    // a deny-list refused with EPERM (docs/processes.md)
	SeccompUnconfined = "unconfined" // no filter
	SeccompPathPrefix = "path:"      // path:/abs/profile.json, a Docker/OCI profile (see docs/processes.md)
)

// defaultSeccompDenied are the system calls the "default" profile refuses
// with EPERM: loading kernel code, rebooting, swap, mounting (old and new
// API) and namespaces, BPF, perf, tracing other processes, the kernel
// keyring, userfaultfd, opening files by handle and raw port I/O.
// Everything else is allowed. Names an architecture does not have are
// skipped.
var defaultSeccompDenied = []string{
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
	"swapon", "swapoff",
	"mount", "umount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick",
	"move_mount", "open_tree", "mount_setattr", "unshare", "setns",
	"bpf", "perf_event_open", "ptrace", "keyctl", "add_key", "request_key",
	"userfaultfd", "open_by_handle_at", "iopl", "ioperm",
}

// seccompRule gives the syscalls named an action (a SECCOMP_RET_* value
// with its data).
type seccompRule struct {
	names  []string
	action uint32
}

// seccompPolicy is a profile before it is compiled for the host.
type seccompPolicy struct {
	defaultAction uint32
	rules         []seccompRule
}

// errnoAction is SECCOMP_RET_ERRNO returning errno.
func errnoAction(errno uint) uint32 {
	return unix.SECCOMP_RET_ERRNO | uint32(errno)&unix.SECCOMP_RET_DATA
}

func defaultSeccompPolicy() seccompPolicy {
	return seccompPolicy{
		defaultAction: unix.SECCOMP_RET_ALLOW,
		rules:         []seccompRule{{names: defaultSeccompDenied, action: errnoAction(uint(unix.EPERM))}},
	}
}

// seccompProgram compiles the profile a spec names (see ProcessSpec.Seccomp)
// for this host: nil for none.
func (r *Runner) seccompProgram(profile string) ([]unix.SockFilter, error) {
	switch {
	case profile == "" || profile == SeccompUnconfined:
		return nil, nil
	case profile == SeccompDefault:
		return r.defaultSeccomp()
	case strings.HasPrefix(profile, SeccompPathPrefix):
		file := strings.TrimPrefix(profile, SeccompPathPrefix)
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("seccomp profile: %w", err)
		}
		pol, err := parseSeccompProfile(b)
		if err != nil {
			return nil, fmt.Errorf("seccomp profile %s: %w", file, err)
		}
		return compileSeccomp(pol)
	}
	return nil, fmt.Errorf("%w: seccomp profile %q must be default, unconfined or path:/file.json", ErrInvalidSpec, profile)
}

// defaultSeccomp compiles the default profile once per Runner.
func (r *Runner) defaultSeccomp() ([]unix.SockFilter, error) {
	r.seccompOnce.Do(func() { r.seccompDefault, r.seccompErr = compileSeccomp(defaultSeccompPolicy()) })
	return r.seccompDefault, r.seccompErr
}

// dockerProfile is the part of the Docker / OCI seccomp profile format
// that KeyStone reads (docs/processes.md has the subset).
type dockerProfile struct {
	DefaultAction   string            `json:"defaultAction"`
	DefaultErrnoRet *uint             `json:"defaultErrnoRet"`
	Architectures   []string          `json:"architectures"` // informative: the host's own ABIs are always covered
	ArchMap         []json.RawMessage `json:"archMap"`       // informative, likewise
	Syscalls        []struct {
		Names    []string          `json:"names"`
		Name     string            `json:"name"` // the older one-name form
		Action   string            `json:"action"`
		ErrnoRet *uint             `json:"errnoRet"`
		Args     []json.RawMessage `json:"args"`
		Comment  json.RawMessage   `json:"comment"`
		Includes map[string]any    `json:"includes"`
		Excludes map[string]any    `json:"excludes"`
	} `json:"syscalls"`
}

// parseSeccompProfile reads a Docker / OCI profile. Anything it cannot
// honour exactly (argument filters, includes/excludes, tracer and
// notification actions, unknown fields) is refused rather than dropped.
func parseSeccompProfile(b []byte) (seccompPolicy, error) {
	var p dockerProfile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return seccompPolicy{}, err
	}
	var pol seccompPolicy
	var err error
	if pol.defaultAction, err = seccompAction(p.DefaultAction, p.DefaultErrnoRet); err != nil {
		return seccompPolicy{}, fmt.Errorf("defaultAction: %w", err)
	}
	for i, sc := range p.Syscalls {
		where := fmt.Sprintf("syscalls[%d]", i)
		if len(sc.Args) > 0 {
			return seccompPolicy{}, fmt.Errorf("%s: argument filters (args) are not supported", where)
		}
		if len(sc.Includes) > 0 || len(sc.Excludes) > 0 {
			return seccompPolicy{}, fmt.Errorf("%s: includes and excludes are not supported", where)
		}
		names := sc.Names
		if sc.Name != "" {
			names = append(names, sc.Name)
		}
		if len(names) == 0 {
			return seccompPolicy{}, fmt.Errorf("%s: no names", where)
		}
		action, err := seccompAction(sc.Action, sc.ErrnoRet)
		if err != nil {
			return seccompPolicy{}, fmt.Errorf("%s: action: %w", where, err)
		}
		pol.rules = append(pol.rules, seccompRule{names: names, action: action})
	}
	return pol, nil
}

// seccompAction reads a Docker action name.
func seccompAction(name string, errnoRet *uint) (uint32, error) {
	if errnoRet != nil && name != "SCMP_ACT_ERRNO" {
		return 0, fmt.Errorf("errnoRet is only for SCMP_ACT_ERRNO, not %q", name)
	}
	switch name {
	case "SCMP_ACT_ALLOW":
		return unix.SECCOMP_RET_ALLOW, nil
	case "SCMP_ACT_ERRNO":
		errno := uint(unix.EPERM)
		if errnoRet != nil {
			errno = *errnoRet
		}
		if errno == 0 || errno > unix.SECCOMP_RET_DATA {
			return 0, fmt.Errorf("errnoRet %d out of range", errno)
		}
		return errnoAction(errno), nil
	case "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD":
		return unix.SECCOMP_RET_KILL_THREAD, nil
	case "SCMP_ACT_KILL_PROCESS":
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case "SCMP_ACT_TRAP":
		return unix.SECCOMP_RET_TRAP, nil
	case "SCMP_ACT_LOG":
		return unix.SECCOMP_RET_LOG, nil
	}
	return 0, fmt.Errorf("%q is not supported (SCMP_ACT_ALLOW, _ERRNO, _KILL, _KILL_THREAD, _KILL_PROCESS, _TRAP, _LOG are)", name)
}

// compatArch is the second system call ABI a 64-bit kernel offers
// processes of this architecture, if any: a filter that left it out
// could be gone around by making the same calls through it.
func compatArch(native *arch.Info) *arch.Info {
	switch native.ID {
	case arch.X86_64.ID:
		return arch.I386
	case arch.AARCH64.ID:
		return arch.ARM
	}
	return nil
}

// Offsets in struct seccomp_data.
const (
	seccompNr   = 0
	seccompArch = 4
	// x32ABIBit marks an x32 system call on x86_64.
	x32ABIBit = 0x40000000
	// maxBPFInsns is the kernel's limit on a filter's length.
	maxBPFInsns = 4096
)

// compileSeccomp turns a policy into a classic BPF program for this host.
// For each ABI the host offers (native and compat), the first rule that
// names the system call decides, otherwise the default action; x32 calls
// on x86_64 get ENOSYS, and a call from any other ABI kills the process.
// Names an ABI does not have are skipped (as Docker does).
func compileSeccomp(pol seccompPolicy) ([]unix.SockFilter, error) {
	native, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	abis := []*arch.Info{native}
	if c := compatArch(native); c != nil {
		abis = append(abis, c)
	}
	stmt := func(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }
	jeqNext := func(k uint32) unix.SockFilter { // equal: go on; not equal: skip one
		return unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: k}
	}
	ret := func(action uint32) unix.SockFilter { return stmt(unix.BPF_RET|unix.BPF_K, action) }

	// The body for each ABI: load the number, one compare and return per
	// named call, then the default.
	bodies := make([][]unix.SockFilter, len(abis))
	for i, a := range abis {
		body := []unix.SockFilter{stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, seccompNr)}
		if a.ID == arch.X86_64.ID {
			body = append(body,
				unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, Jt: 0, Jf: 1, K: x32ABIBit},
				ret(errnoAction(uint(unix.ENOSYS))))
		}
		seen := map[int]bool{}
		for _, rule := range pol.rules {
			for _, name := range rule.names {
				nr, ok := a.SyscallNames[name]
				if !ok || seen[nr] {
					continue // not on this ABI, or an earlier rule decides
				}
				seen[nr] = true
				body = append(body, jeqNext(uint32(nr)), ret(rule.action))
			}
		}
		bodies[i] = append(body, ret(pol.defaultAction))
	}

	// The head dispatches on the ABI: "jeq id; ja body" for each, then kill.
	prog := []unix.SockFilter{stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, seccompArch)}
	head := 1 + 2*len(abis) + 1
	offset := 0 // of each body after the head
	for i, a := range abis {
		at := len(prog) + 1 // the ja
		target := head + offset
		prog = append(prog, jeqNext(uint32(a.ID)),
			stmt(unix.BPF_JMP|unix.BPF_JA, uint32(target-at-1)))
		offset += len(bodies[i])
	}
	prog = append(prog, ret(unix.SECCOMP_RET_KILL_PROCESS))
	for _, b := range bodies {
		prog = append(prog, b...)
	}
	if len(prog) > maxBPFInsns {
		return nil, errors.New("seccomp profile too long for one filter")
	}
	return prog, nil
}
