package runner

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// The shim is the agent's own executable started with shimArg. It is the
// only way to act in the new process between fork and exec, which os/exec
// does not offer: the parent starts it in the component's v2 group (or
// moves it there), then sends the request; the shim's exec thread joins
// the v1 groups (v1 has no clone-into-cgroup, so without this gate the
// process could fork before being limited), sets the rlimit, drops to the
// run_as user, sets no_new_privs and execs the target.
//
// File descriptors in the shim: 3 carries the request (JSON, then EOF) from
// the parent, 4 carries a failure back (JSON); both are close-on-exec, so a
// successful exec closes 4 and the parent reads EOF with nothing on it.
const (
	shimArg       = "__keystone-runner-shim__"
	shimRequestFD = 3
	shimErrorFD   = 4
	// shimFailedCode is the exit code of a shim that reported a failure.
	shimFailedCode = 127
)

// shimRequest is what the parent sends once the shim is in its cgroups.
// Env may hold secrets: it is never logged and never part of an error.
type shimRequest struct {
	Path       string   `json:"path"`
	Argv       []string `json:"argv"`
	Env        []string `json:"env"`
	Dir        string   `json:"dir"`
	UID        int      `json:"uid"` // -1 = keep the agent's
	GID        int      `json:"gid"` // -1 = keep the agent's (and its groups)
	NoNewPrivs bool     `json:"no_new_privs"`
	OpenFiles  uint64   `json:"open_files"` // 0 = keep
	// Tasks are the v1 groups' "tasks" files: the shim's exec thread joins
	// each before anything else (none on a v2-only host).
	Tasks []string `json:"tasks,omitempty"`
	// Seccomp is the compiled filter to load; none when empty.
	Seccomp []unix.SockFilter `json:"seccomp,omitempty"`
}

// shimFailure is what a shim reports instead of exec'ing.
type shimFailure struct {
	Step    string `json:"step"`
	Message string `json:"message"`
}

// IsShim reports whether the program was started as the runner's shim
// (args is os.Args). A main that uses the runner calls it first:
//
//	if runner.IsShim(os.Args) {
//		runner.ShimMain()
//	}
//
// and so must a TestMain of a package whose tests start processes.
func IsShim(args []string) bool { return len(args) >= 2 && args[1] == shimArg }

// ShimMain turns this process into the component's process and never
// returns: it execs the target, or reports why it could not to the parent
// and exits with status 127.
func ShimMain() {
	// no_new_privs is per thread: set it on the thread that execs.
	runtime.LockOSThread()
	step, err := runShim()
	msg, _ := json.Marshal(shimFailure{Step: step, Message: err.Error()})
	if _, werr := os.NewFile(shimErrorFD, "shim-errors").Write(msg); werr != nil {
		fmt.Fprintf(os.Stderr, "keystone runner shim: %s: %v\n", step, err)
	}
	os.Exit(shimFailedCode)
}

// joinSelf moves the calling thread into the v1 group whose tasks file is
// given. ShimMain runs locked to the thread that will exec, so the program
// it execs starts in the group. Plain system calls: nothing may move the
// goroutine elsewhere or hand the write to another thread.
func joinSelf(tasks string) error {
	fd, err := syscall.Open(tasks, syscall.O_WRONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	_, err = syscall.Write(fd, []byte("0"))
	return err
}

// runShim applies the request and execs; it returns only on failure, with
// the step that failed.
func runShim() (string, error) {
	syscall.CloseOnExec(shimRequestFD)
	syscall.CloseOnExec(shimErrorFD)
	in := os.NewFile(shimRequestFD, "shim-request")
	var req shimRequest
	if err := json.NewDecoder(in).Decode(&req); err != nil {
		return "read request", err
	}
	_ = in.Close()
	for _, f := range req.Tasks {
		if err := joinSelf(f); err != nil {
			return "join cgroup", fmt.Errorf("%s: %w", f, err)
		}
	}
	if req.OpenFiles > 0 {
		// syscall.Setrlimit (not x/sys/unix) also stops syscall.Exec from
		// restoring the soft limit Go had at start.
		lim := syscall.Rlimit{Cur: req.OpenFiles, Max: req.OpenFiles}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return "set open_files", err
		}
	}
	// A filter needs no_new_privs or CAP_SYS_ADMIN to be loaded: without
	// no_new_privs it is loaded while the shim still has the agent's
	// privileges, with it as late as possible (as runc does).
	if len(req.Seccomp) > 0 && !req.NoNewPrivs {
		if err := loadSeccomp(req.Seccomp); err != nil {
			return "seccomp", err
		}
	}
	if req.GID >= 0 {
		if err := syscall.Setgroups(nil); err != nil {
			return "clear supplementary groups", err
		}
		if err := syscall.Setgid(req.GID); err != nil {
			return "setgid", fmt.Errorf("%d: %w", req.GID, err)
		}
	}
	if req.UID >= 0 {
		if err := syscall.Setuid(req.UID); err != nil {
			return "setuid", fmt.Errorf("%d: %w", req.UID, err)
		}
	}
	if req.Dir != "" {
		if err := os.Chdir(req.Dir); err != nil {
			return "chdir", err
		}
	}
	if req.NoNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return "no_new_privileges", err
		}
		if len(req.Seccomp) > 0 {
			if err := loadSeccomp(req.Seccomp); err != nil {
				return "seccomp", err
			}
		}
	}
	err := syscall.Exec(req.Path, req.Argv, req.Env)
	return "exec", fmt.Errorf("%s: %w", req.Path, err)
}
