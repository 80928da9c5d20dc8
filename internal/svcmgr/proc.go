package svcmgr

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// exitStatusExec is systemd's EXIT_EXEC: the main process could not be
// executed.
const exitStatusExec = 203

// trampoline exports the shell's own pid as WATCHDOG_PID, then execs the
// service in its place: see the package doc.
const trampoline = `WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$0" "$@"`

// managedEnv are the variables svcmgr sets itself: it drops them from the
// service's base environment (inherited or given) before adding its own.
var managedEnv = []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"}

// exitEvent is the end of a process svcmgr watches.
type exitEvent struct {
	pid     int
	state   *os.ProcessState // nil when unknown (not our child)
	unknown bool
}

// proc is the main process: our child, or a process named by MAINPID=.
type proc struct {
	pid  int
	exec string // Config.Exec resolved at start; "" after MAINPID=
	// signal sends a signal without the risk of hitting a reused pid
	// (os.Process and pidfd_send_signal both use a pidfd).
	signal func(syscall.Signal) error
	// release stops watching a process that is not our child; nil for a
	// child, whose Wait goroutine ends by itself.
	release func()
}

// execError is a start that failed before the program ran (systemd's
// 203/EXEC).
type execError struct{ err error }

func (e *execError) Error() string { return "exec: " + e.err.Error() }
func (e *execError) Unwrap() error { return e.err }

// resolveExec resolves path through its symlinks and checks that the
// result is an executable file, as the execve at each start would.
func resolveExec(path string) (string, error) {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", &execError{err}
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return "", &execError{err}
	}
	if !fi.Mode().IsRegular() {
		return "", &execError{fmt.Errorf("%s is not a regular file", resolved)}
	}
	if err := unix.Access(resolved, unix.X_OK); err != nil {
		return "", &execError{fmt.Errorf("%s: %w", resolved, err)}
	}
	return resolved, nil
}

// serviceEnv builds the service's environment from cfg.
func serviceEnv(cfg Config, notifyPath string, watchdog time.Duration) []string {
	base := cfg.Env
	if base == nil {
		base = os.Environ()
	}
	var env []string
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(managedEnv, k) {
			env = append(env, kv)
		}
	}
	env = append(env, "NOTIFY_SOCKET="+notifyPath)
	if watchdog > 0 {
		env = append(env, "WATCHDOG_USEC="+strconv.FormatInt(watchdog.Microseconds(), 10))
	}
	return env
}

// outputs turns the configured writers into files for the child. A writer
// that is not a file gets a pipe and a copier goroutine: os/exec's own
// copying would make Wait wait until every process holding the pipe has
// exited, and with KillMode=process the service's children outlive it.
type outputs struct {
	wg      sync.WaitGroup
	mu      sync.Mutex
	readers []*os.File
}

// file returns what to give the child for w, and the parent's copy of the
// write end to close once the child has started.
func (o *outputs) file(w io.Writer) (child, parentEnd *os.File, err error) {
	switch w := w.(type) {
	case nil:
		return nil, nil, nil
	case *os.File:
		return w, nil, nil
	}
	r, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	o.mu.Lock()
	o.readers = append(o.readers, r)
	o.mu.Unlock()
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		io.Copy(w, r) //nolint:errcheck // the service's output is best effort
	}()
	return pw, pw, nil
}

// close ends the copiers, even while descendants of the service still
// hold the pipes, and waits for them.
func (o *outputs) close() {
	o.mu.Lock()
	for _, r := range o.readers {
		r.Close()
	}
	o.readers = nil
	o.mu.Unlock()
	o.wg.Wait()
}

// spawn starts one run of the service and a goroutine that reaps it and
// reports its end on exits (or drops the report once quit is closed).
func spawn(cfg Config, notifyPath string, watchdog time.Duration, out *outputs, exits chan<- exitEvent, quit <-chan struct{}) (*proc, error) {
	resolved, err := resolveExec(cfg.Exec)
	if err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	if watchdog > 0 {
		cmd = exec.Command("/bin/sh", append([]string{"-c", trampoline, cfg.Exec}, cfg.Args...)...)
	} else {
		cmd = exec.Command(cfg.Exec, cfg.Args...)
	}
	cmd.Env = serviceEnv(cfg, notifyPath, watchdog)
	cmd.Dir = cfg.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	stdout, pout, err := out.file(cfg.Stdout)
	if err != nil {
		return nil, fmt.Errorf("output pipe: %w", err)
	}
	stderr, perr := stdout, (*os.File)(nil)
	if !sameWriter(cfg.Stdout, cfg.Stderr) {
		if stderr, perr, err = out.file(cfg.Stderr); err != nil {
			pout.Close()
			return nil, fmt.Errorf("output pipe: %w", err)
		}
	}
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if stderr != nil {
		cmd.Stderr = stderr
	}
	err = cmd.Start()
	pout.Close()
	perr.Close()
	if err != nil {
		return nil, &execError{err}
	}
	p := &proc{pid: cmd.Process.Pid, exec: resolved}
	p.signal = func(sig syscall.Signal) error { return ignoreDone(cmd.Process.Signal(sig)) }
	go func() {
		cmd.Wait() //nolint:errcheck // the status is in ProcessState
		select {
		case exits <- exitEvent{pid: p.pid, state: cmd.ProcessState}:
		case <-quit:
		}
	}()
	return p, nil
}

// sameWriter reports whether a and b are the same writer, as os/exec
// decides when to share one pipe for both outputs.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false // not comparable
		}
	}()
	return a == b
}

func ignoreDone(err error) error {
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// adopt watches pid, which is not our child, through a pidfd: it learns
// when the process ends, not how. The watch ends with release.
func adopt(pid int, exits chan<- exitEvent, quit <-chan struct{}) (*proc, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	var wake [2]int
	if err := unix.Pipe2(wake[:], unix.O_CLOEXEC); err != nil {
		unix.Close(pidfd)
		return nil, fmt.Errorf("pipe: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}, {Fd: int32(wake[0]), Events: unix.POLLIN}}
		for {
			_, err := unix.Poll(fds, -1)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil || fds[1].Revents != 0 {
				return
			}
			if fds[0].Revents != 0 {
				break
			}
		}
		select {
		case exits <- exitEvent{pid: pid, unknown: true}:
		case <-quit:
		}
	}()
	var once sync.Once
	return &proc{
		pid: pid,
		signal: func(sig syscall.Signal) error {
			err := unix.PidfdSendSignal(pidfd, sig, nil, 0)
			if errors.Is(err, unix.ESRCH) {
				return nil
			}
			return err
		},
		release: func() {
			once.Do(func() {
				unix.Write(wake[1], []byte{0}) //nolint:errcheck // wakes the poll
				<-done
				unix.Close(wake[0])
				unix.Close(wake[1])
				unix.Close(pidfd)
			})
		},
	}, nil
}

// monotonicUsec is CLOCK_MONOTONIC in µs, the clock of MONOTONIC_USEC=.
func monotonicUsec() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return uint64(ts.Sec)*1e6 + uint64(ts.Nsec)/1e3
}

// resultOf is systemd's verdict on a process that ended with st: status 0
// and the clean signals SIGHUP, SIGINT, SIGTERM and SIGPIPE are success.
func resultOf(ev exitEvent) (code int, sig syscall.Signal, core bool, r Result) {
	if ev.unknown || ev.state == nil {
		return -1, 0, false, ResultSuccess
	}
	ws, ok := ev.state.Sys().(syscall.WaitStatus)
	if !ok {
		return ev.state.ExitCode(), 0, false, ResultExitCode
	}
	switch {
	case ws.Exited() && ws.ExitStatus() == 0:
		return 0, 0, false, ResultSuccess
	case ws.Exited():
		return ws.ExitStatus(), 0, false, ResultExitCode
	case ws.Signaled():
		sig := ws.Signal()
		switch {
		case ws.CoreDump():
			return -1, sig, true, ResultCoreDump
		case sig == syscall.SIGHUP || sig == syscall.SIGINT || sig == syscall.SIGTERM || sig == syscall.SIGPIPE:
			return -1, sig, false, ResultSuccess
		default:
			return -1, sig, false, ResultSignal
		}
	}
	return -1, 0, false, ResultExitCode
}
