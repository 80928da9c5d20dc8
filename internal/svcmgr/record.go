package svcmgr

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"
)

// State is the unit's ActiveState, as systemctl shows it.
type State string

// The states. A restart pending after RestartSec counts as Activating, as
// systemd's auto-restart sub-state does.
const (
	Inactive     State = "inactive"
	Activating   State = "activating"
	Active       State = "active"
	Reloading    State = "reloading"
	Deactivating State = "deactivating"
	Failed       State = "failed"
)

// Result is why a run of the service ended (systemd's Result=).
type Result string

// The results. The first failure of a run wins: a process killed by
// SIGKILL after a watchdog timeout ends with ResultWatchdog.
const (
	ResultSuccess       Result = "success"
	ResultExitCode      Result = "exit-code"
	ResultSignal        Result = "signal"
	ResultCoreDump      Result = "core-dump"
	ResultTimeout       Result = "timeout"
	ResultWatchdog      Result = "watchdog"
	ResultProtocol      Result = "protocol"
	ResultStartLimitHit Result = "start-limit-hit"
)

// Errors the methods return; test them with errors.Is.
var (
	// ErrClosed: the manager was closed (Close, or its context ended).
	ErrClosed = errors.New("svcmgr: closed")
	// ErrFailed: the unit is failed and will not restart (start limit,
	// or Restart=no after a failure), so the state waited for never comes.
	ErrFailed = errors.New("svcmgr: unit failed")
	// ErrState: the operation is not possible in the current state.
	ErrState = errors.New("svcmgr: wrong state")
	// ErrReloadTimeout: the reload did not finish within TimeoutStartSec;
	// the unit is back to active, as systemd leaves it.
	ErrReloadTimeout = errors.New("svcmgr: reload timed out")
	// ErrReloadAborted: the main process exited, or the unit was stopped,
	// before the reload finished.
	ErrReloadAborted = errors.New("svcmgr: reload aborted")
)

// Notification is one sd_notify datagram.
type Notification struct {
	Time time.Time
	// PID is the sender's pid, from SCM_CREDENTIALS.
	PID int
	// Message is the datagram as sent: newline-separated assignments.
	Message string
}

// Get returns the value of the assignment key=value in the message (the
// first one, as systemd reads it).
func (n Notification) Get(key string) (string, bool) {
	for _, line := range strings.Split(n.Message, "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			return v, true
		}
	}
	return "", false
}

// Has reports whether the message holds the assignment, e.g. "READY=1".
func (n Notification) Has(assignment string) bool {
	for _, line := range strings.Split(n.Message, "\n") {
		if line == assignment {
			return true
		}
	}
	return false
}

func (n Notification) String() string {
	return fmt.Sprintf("%s pid %d %q", n.Time.Format("15:04:05.000000"), n.PID, n.Message)
}

// Exit is the end of one run of the main process.
type Exit struct {
	PID  int
	Time time.Time
	// Exec is what Config.Exec resolved to when this run started (an
	// execve by the service itself does not change it).
	Exec string
	// Code is the exit status, or -1 when the process was killed by a
	// signal or its status is unknown.
	Code int
	// Signal is the signal that killed it, or 0.
	Signal syscall.Signal
	// CoreDump: the kernel dumped core.
	CoreDump bool
	// Unknown: the main process was not our child (after MAINPID=), so
	// only its end is known, not its status.
	Unknown bool
	// Result is systemd's verdict on the run.
	Result Result
	// Err is set when the run never started: Exec could not be resolved
	// or executed (systemd's status 203/EXEC, which Code then holds), or
	// the start limit was hit.
	Err error
}

func (e Exit) String() string {
	how := fmt.Sprintf("status %d", e.Code)
	switch {
	case e.Err != nil:
		how = e.Err.Error()
	case e.Unknown:
		how = "status unknown"
	case e.Signal != 0:
		how = "signal " + e.Signal.String()
	}
	return fmt.Sprintf("pid %d %s, result %s", e.PID, how, e.Result)
}

// Transition is one change of state.
type Transition struct {
	Time     time.Time
	From, To State
	// Why names the event: "start", "ready", "reload", "exit", "watchdog",
	// "start-timeout", "stop", ...
	Why string
}
