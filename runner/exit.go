package runner

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// ExitStatus is how a component's process ended.
type ExitStatus struct {
	// Code is the exit code; -1 when killed by a signal or not waited for.
	Code int
	// Signal names the signal that killed the process ("SIGKILL"); "" when
	// it exited by itself.
	Signal string
	// OOMKilled is true when the kernel's OOM killer killed a process of
	// the component (its memory_limit was reached).
	OOMKilled bool
	// Stopped is true when the process ended after Stop was called.
	Stopped bool
	// Forced is true when Stop had to SIGKILL the component after its stop
	// timeout (or after its context ended).
	Forced bool
	// Err is set when waiting for the process failed; Code is then -1.
	Err error
	// StderrTail is the end of what the process wrote to stderr (up to
	// StderrTailBytes, whole lines), the evidence of why it failed.
	StderrTail string
}

// Success reports an exit with code 0 and nothing else wrong.
func (s ExitStatus) Success() bool {
	return s.Err == nil && s.Signal == "" && s.Code == 0 && !s.OOMKilled
}

// Reason says in a few words how the process ended, for a state
// transition or a log line: "exited with code 3", "killed by SIGSEGV",
// "OOM-killed (memory_limit reached)", "stopped: SIGKILL after stop_timeout".
func (s ExitStatus) Reason() string {
	var what string
	switch {
	case s.Err != nil:
		what = "lost: " + s.Err.Error()
	case s.Signal != "":
		what = "killed by " + s.Signal
	default:
		what = fmt.Sprintf("exited with code %d", s.Code)
	}
	switch {
	case s.OOMKilled:
		return "OOM-killed (memory_limit reached), " + what
	case s.Forced:
		return "stopped: SIGKILL after stop_timeout"
	case s.Stopped:
		return "stopped, " + what
	}
	return what
}

// exitStatusOf turns what os/exec reports into an ExitStatus.
func exitStatusOf(ps *os.ProcessState, waitErr error) ExitStatus {
	if ps == nil {
		return ExitStatus{Code: -1, Err: waitErr}
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if !ok {
		return ExitStatus{Code: ps.ExitCode()}
	}
	return exitStatusOfWait(ws)
}

// exitStatusOfWait turns a wait status into an ExitStatus.
func exitStatusOfWait(ws syscall.WaitStatus) ExitStatus {
	switch {
	case ws.Signaled():
		return ExitStatus{Code: -1, Signal: unix.SignalName(ws.Signal())}
	default:
		return ExitStatus{Code: ws.ExitStatus()}
	}
}
