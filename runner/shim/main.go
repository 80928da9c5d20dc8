package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// Main turns this process into the component's process and never returns:
// it execs the target, or reports why it could not on ErrorFD and exits
// with FailedCode. A main that serves as the shim calls it first:
//
//	if shim.Is(os.Args) {
//		shim.Main()
//	}
func Main() {
	// no_new_privs and the cgroup v1 join are per thread: stay on the
	// thread that execs.
	runtime.LockOSThread()
	step, err := run()
	msg, _ := json.Marshal(Failure{Step: step, Message: err.Error()})
	if _, werr := os.NewFile(ErrorFD, "shim-errors").Write(msg); werr != nil {
		fmt.Fprintf(os.Stderr, "keystone runner shim: %s: %v\n", step, err)
	}
	os.Exit(FailedCode)
}

// JoinThread moves the calling thread into the v1 group whose tasks file
// is given: writing "0" there moves the writer's own thread, without the
// kernel's global lock for moving whole processes. The caller must be
// locked to its thread (the shim's exec thread, the runner's spawner
// thread); plain system calls, so that nothing hands the write to another
// thread.
func JoinThread(tasks string) error {
	fd, err := syscall.Open(tasks, syscall.O_WRONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	_, err = syscall.Write(fd, []byte("0"))
	return err
}

// run applies the request and execs; it returns only on failure, with the
// step that failed.
func run() (string, error) {
	syscall.CloseOnExec(RequestFD)
	syscall.CloseOnExec(ErrorFD)
	in := os.NewFile(RequestFD, "shim-request")
	var req Request
	if err := json.NewDecoder(in).Decode(&req); err != nil {
		return "read request", err
	}
	_ = in.Close()
	for _, f := range req.Tasks {
		if err := JoinThread(f); err != nil {
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
		if err := LoadSeccomp(req.Seccomp); err != nil {
			return "seccomp", err
		}
	}
	if step, err := takeCredentials(req); err != nil {
		return step, err
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
			if err := LoadSeccomp(req.Seccomp); err != nil {
				return "seccomp", err
			}
		}
	}
	err := syscall.Exec(req.Path, req.Argv, req.Env)
	return "exec", fmt.Errorf("%s: %w", req.Path, err)
}

// takeCredentials takes on the request's group and user and, with NoRoot,
// makes sure root is gone. An id past 32 bits is refused: the kernel would
// read it modulo 2^32, and 2^32 is root.
func takeCredentials(req Request) (string, error) {
	if req.UID >= math.MaxUint32 || req.GID >= math.MaxUint32 {
		return "credentials", fmt.Errorf("uid %d or gid %d out of range", req.UID, req.GID)
	}
	if req.GID >= 0 {
		if err := syscall.Setgroups(nil); err != nil {
			return "clear supplementary groups", err
		}
		if err := syscall.Setgid(int(req.GID)); err != nil {
			return "setgid", fmt.Errorf("%d: %w", req.GID, err)
		}
	}
	if req.UID >= 0 {
		if err := syscall.Setuid(int(req.UID)); err != nil {
			return "setuid", fmt.Errorf("%d: %w", req.UID, err)
		}
	}
	if r, e, s := unix.Getresuid(); req.NoRoot && (r == 0 || e == 0 || s == 0) {
		return "refuse root", errors.New("would run as root (uid 0) and security.allow_root is false")
	}
	return "", nil
}
