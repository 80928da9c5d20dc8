package supervisor

import "fmt"

// ExitStatus is how a component's process ended, as the supervisor needs to
// know it. Launchers translate their own result into it.
type ExitStatus struct {
	// Code is the exit code; -1 when the process was killed by a signal or
	// could not be waited for.
	Code int
	// Signal names the signal that killed the process ("SIGKILL"); "" when it
	// exited by itself.
	Signal string
	// OOM is true when the kernel's out-of-memory killer ended it.
	OOM bool
	// Err is set when waiting for the process failed; Code is then -1.
	Err error
	// Stderr is the end of what the process wrote to stderr: the evidence a
	// failure quotes ("exited with status 1: panic: cannot open …").
	Stderr string
}

// Success reports a clean exit with status 0.
func (e ExitStatus) Success() bool { return e.Err == nil && e.Signal == "" && e.Code == 0 }

// String describes the exit for a state reason, with the end of its
// stderr: "exited with status 1: cannot open /dev/ttyUSB0",
// "killed by SIGKILL (out of memory)".
func (e ExitStatus) String() string {
	if e.Stderr != "" {
		return e.what() + ": " + e.Stderr
	}
	return e.what()
}

func (e ExitStatus) what() string {
	var s string
	switch {
	case e.Err != nil:
		s = "lost: " + e.Err.Error()
	case e.Signal != "":
		s = "killed by " + e.Signal
	default:
		s = fmt.Sprintf("exited with status %d", e.Code)
	}
	if e.OOM {
		s += " (out of memory)"
	}
	return s
}

// stopString describes the end of a process the supervisor asked to stop:
// dying of the signal it was sent is the normal end, not a kill.
func (e ExitStatus) stopString() string {
	if e.Err == nil && !e.OOM && e.Signal != "" && e.Signal != "SIGKILL" {
		return "stopped by " + e.Signal
	}
	return e.what()
}
