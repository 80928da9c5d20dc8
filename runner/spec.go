package runner

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"

	"github.com/keystone-edge/keystone/runner/cgroup"
)

// ErrInvalidSpec says a ProcessSpec cannot be run as given.
var ErrInvalidSpec = errors.New("runner: invalid process spec")

// defaultPath is PATH for a process whose Env sets none.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ProcessSpec says what to run and how to confine it. The supervisor builds
// it from a rendered recipe (see SpecFromRecipe). Its String and LogValue
// show environment names but never values, so a spec can be logged.
type ProcessSpec struct {
	// Component names the log file and the cgroup; one path element.
	// Required.
	Component string
	// Version is for messages only; "" = not shown.
	Version string

	// Command is the absolute path of the program, exec'd directly with
	// Args (no shell, no PATH lookup). Exactly one of Command and Script.
	Command string
	// Script is run with /bin/sh -c; Args become its positional
	// parameters ($1 ...), $0 is the component name.
	Script string
	// Args are the arguments after the program name; nil = none.
	Args []string

	// Env is the whole environment as "KEY=value" entries: the agent's own
	// environment is never inherited. nil = empty, except that PATH gets a
	// standard value when Env has none and, with RunAs, HOME, USER and
	// LOGNAME come from the account when Env has none.
	Env []string
	// Secrets are added to the environment after Env (winning over it).
	// Their values never appear in logs, errors or String. nil = none.
	Secrets map[string]string
	// Dir is the absolute working directory, entered as the RunAs user;
	// "" = "/".
	Dir string

	// RunAs is "user:group" or "user" (the account's primary group), by
	// name or decimal id (see ResolveRunAs); supplementary groups are
	// cleared. "" = as the agent, keeping its groups.
	RunAs string
	// AllowRoot lets the process run as root: uid 0 by value, which
	// includes RunAs "" while the agent is root. false = Start refuses
	// such a spec (ErrRoot), and the shim checks again before exec.
	AllowRoot bool
	// NoNewPrivileges sets PR_SET_NO_NEW_PRIVS: setuid binaries and file
	// capabilities grant nothing. false = not set.
	NoNewPrivileges bool
	// Seccomp is the system call filter: SeccompDefault (a deny-list
	// refused with EPERM), SeccompUnconfined, or "path:" and the absolute
	// file of a Docker/OCI profile (a subset; see docs/processes.md). It
	// is applied in the process itself just before exec, and kept by
	// everything it runs. "" = no filter, as unconfined; SpecFromRecipe
	// turns a recipe's "" into default.
	Seccomp string
	// OpenFiles sets RLIMIT_NOFILE (soft and hard) in the process itself;
	// 0 = the limit the agent was started with (not the raised limit the
	// Go runtime gives the agent).
	OpenFiles uint64

	// CPUQuotaPercent caps CPU time in percent of one CPU; 0 = no cap.
	CPUQuotaPercent int
	// MemoryLimitBytes caps the memory of all the component's processes;
	// past it the kernel OOM-kills one of them. 0 = no cap.
	MemoryLimitBytes int64
	// PidsLimit caps the number of tasks (processes and threads); 0 = no
	// cap.
	PidsLimit int64

	// Stdin, when set, is copied to the process's standard input, which is
	// closed at its end (a metrics plugin's context document); nil =
	// /dev/null.
	Stdin io.Reader
	// Stdout, when set, receives the process's standard output instead of
	// the component's log (a metrics plugin's result document). It is
	// written from one goroutine, never after Done is closed; a write error
	// discards the rest without blocking the process. nil = the log.
	Stdout io.Writer
	// Stderr, when set, also receives the process's standard error, which
	// still goes to the log (a plugin keeps the tail for its error); the
	// same rules as Stdout apply. nil = the log only.
	Stderr io.Writer
}

// limits are the spec's cgroup limits.
func (s ProcessSpec) limits() cgroup.Limits {
	return cgroup.Limits{CPUQuotaPercent: s.CPUQuotaPercent, MemoryBytes: s.MemoryLimitBytes, Pids: s.PidsLimit}
}

// validate checks what the kernel would otherwise reject less clearly.
func (s ProcessSpec) validate() error {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if s.Component == "" || s.Component == "." || s.Component == ".." || strings.ContainsAny(s.Component, "/\x00") {
		bad("component %q must be one non-empty path element", s.Component)
	}
	switch {
	case s.Command == "" && s.Script == "":
		bad("one of command and script is required")
	case s.Command != "" && s.Script != "":
		bad("command and script are exclusive")
	case s.Command != "" && !filepath.IsAbs(s.Command):
		bad("command %q must be an absolute path", s.Command)
	}
	if s.Dir != "" && !filepath.IsAbs(s.Dir) {
		bad("dir %q must be an absolute path", s.Dir)
	}
	for _, a := range append(append([]string{s.Command, s.Script, s.Dir}, s.Args...), s.Env...) {
		if strings.ContainsRune(a, 0) {
			bad("command, script, dir, args and env must not contain NUL")
			break
		}
	}
	for _, e := range s.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			bad("env entry %q is not KEY=value", envName(e))
		}
	}
	for k, v := range s.Secrets {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			bad("secret %q: name must be non-empty without '=' and the value without NUL", k)
		}
	}
	switch p, isPath := strings.CutPrefix(s.Seccomp, SeccompPathPrefix); {
	case isPath && !filepath.IsAbs(p):
		bad("seccomp profile %q needs an absolute file after path:", s.Seccomp)
	case !isPath && s.Seccomp != "" && s.Seccomp != SeccompDefault && s.Seccomp != SeccompUnconfined:
		bad("seccomp profile %q must be default, unconfined or path:/file.json", s.Seccomp)
	}
	if s.CPUQuotaPercent < 0 || s.MemoryLimitBytes < 0 || s.PidsLimit < 0 {
		bad("limits must not be negative")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s: %s", ErrInvalidSpec, s.Component, strings.Join(errs, "; "))
	}
	return nil
}

// argv is the program and its arguments.
func (s ProcessSpec) argv() (path string, argv []string) {
	if s.Script != "" {
		return "/bin/sh", append([]string{"/bin/sh", "-c", s.Script, s.Component}, s.Args...)
	}
	return s.Command, append([]string{s.Command}, s.Args...)
}

// environ builds the process environment: Env, then the account's
// defaults and PATH where Env has none, then Secrets (sorted); a later
// entry for a name replaces an earlier one.
func (s ProcessSpec) environ(acct *Account) []string {
	env := slices.Clone(s.Env)
	has := func(name string) bool {
		return slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, name+"=") })
	}
	if !has("PATH") {
		env = append(env, defaultPath)
	}
	if acct != nil {
		for _, kv := range [][2]string{{"HOME", acct.Home}, {"USER", acct.User}, {"LOGNAME", acct.User}} {
			if kv[1] != "" && !has(kv[0]) {
				env = append(env, kv[0]+"="+kv[1])
			}
		}
	}
	keys := make([]string, 0, len(s.Secrets))
	for k := range s.Secrets {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env = append(env, k+"="+s.Secrets[k])
	}
	return dedupEnv(env)
}

// dedupEnv keeps only the last entry for each name, where it stands.
func dedupEnv(env []string) []string {
	last := map[string]int{}
	for i, e := range env {
		last[envName(e)] = i
	}
	out := make([]string, 0, len(last))
	for i, e := range env {
		if last[envName(e)] == i {
			out = append(out, e)
		}
	}
	return out
}

func envName(e string) string {
	k, _, _ := strings.Cut(e, "=")
	return k
}

// envNames lists the names of entries, never their values.
func envNames(env []string) []string {
	out := make([]string, len(env))
	for i, e := range env {
		out[i] = envName(e)
	}
	return out
}

func secretNames(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// String describes the spec without any environment value.
func (s ProcessSpec) String() string {
	var b strings.Builder
	b.WriteString(s.Component)
	if s.Version != "" {
		b.WriteString("@" + s.Version)
	}
	if s.Command != "" {
		fmt.Fprintf(&b, " command=%q", s.Command)
	} else {
		fmt.Fprintf(&b, " script=%q", s.Script)
	}
	if len(s.Args) > 0 {
		fmt.Fprintf(&b, " args=%q", s.Args)
	}
	fmt.Fprintf(&b, " env=%v secrets=%v", envNames(s.Env), secretNames(s.Secrets))
	if s.RunAs != "" {
		fmt.Fprintf(&b, " run_as=%s", s.RunAs)
	}
	if s.AllowRoot {
		b.WriteString(" allow_root")
	}
	if s.Seccomp != "" {
		fmt.Fprintf(&b, " seccomp=%s", s.Seccomp)
	}
	return b.String()
}

// GoString is String, so that %#v cannot print secrets either.
func (s ProcessSpec) GoString() string { return "runner.ProcessSpec{" + s.String() + "}" }

// LogValue shows the spec in structured logs without environment values.
func (s ProcessSpec) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("component", s.Component)}
	if s.Version != "" {
		attrs = append(attrs, slog.String("version", s.Version))
	}
	if s.Command != "" {
		attrs = append(attrs, slog.String("command", s.Command))
	} else {
		attrs = append(attrs, slog.String("script", s.Script))
	}
	attrs = append(attrs,
		slog.Any("args", s.Args),
		slog.Any("env", envNames(s.Env)),
		slog.Any("secrets", secretNames(s.Secrets)),
		slog.String("run_as", s.RunAs),
		slog.Bool("allow_root", s.AllowRoot),
		slog.String("dir", s.Dir),
	)
	return slog.GroupValue(attrs...)
}
