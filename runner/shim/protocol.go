package shim

import "golang.org/x/sys/unix"

// File descriptors in the shim: RequestFD carries the request (JSON, then
// EOF) from the parent, ErrorFD carries a failure back (JSON); Main makes
// both close-on-exec, so a successful exec closes ErrorFD and the parent
// reads EOF with nothing on it.
const (
	// Arg is the first argument (os.Args[1]) of a program started as the
	// shim; the second is a label shown by ps.
	Arg = "__keystone-runner-shim__"
	// RequestFD is the shim's end of the request pipe.
	RequestFD = 3
	// ErrorFD is the shim's end of the failure pipe.
	ErrorFD = 4
	// FailedCode is the exit code of a shim that reported a failure.
	FailedCode = 127
)

// Request is what the parent sends once the shim is in its cgroups.
// Env may hold secrets: it is never logged and never part of an error.
type Request struct {
	// Path is the absolute program to exec.
	Path string `json:"path"`
	// Argv is its argument vector, the program name first.
	Argv []string `json:"argv"`
	// Env is its whole environment.
	Env []string `json:"env"`
	// Dir is its working directory; "" = stay in the shim's.
	Dir string `json:"dir"`
	// UID is the user to become; -1 = keep the agent's. int64, so that a
	// uid past 2^31 stays positive on 32-bit hosts.
	UID int64 `json:"uid"`
	// GID is the group to become, with the supplementary groups cleared;
	// -1 = keep the agent's (and its groups).
	GID int64 `json:"gid"`
	// NoRoot refuses to exec when, the credentials taken on, any of the
	// process's uids is 0: the parent's check, made again where nothing
	// can come between it and the exec. false = root is allowed.
	NoRoot bool `json:"no_root,omitempty"`
	// NoNewPrivs sets PR_SET_NO_NEW_PRIVS; false = not set.
	NoNewPrivs bool `json:"no_new_privs"`
	// OpenFiles is RLIMIT_NOFILE (soft and hard); 0 = keep.
	OpenFiles uint64 `json:"open_files"`
	// Tasks are the v1 groups' "tasks" files: the shim's exec thread joins
	// each before anything else. nil = none (a v2-only host).
	Tasks []string `json:"tasks,omitempty"`
	// Seccomp is the compiled filter to load; nil = none.
	Seccomp []unix.SockFilter `json:"seccomp,omitempty"`
}

// Failure is what a shim reports instead of exec'ing.
type Failure struct {
	// Step names what failed ("setuid", "exec", ...).
	Step string `json:"step"`
	// Message is the error's text.
	Message string `json:"message"`
}

// Is reports whether the program was started as the shim (args is
// os.Args).
func Is(args []string) bool { return len(args) >= 2 && args[1] == Arg }
