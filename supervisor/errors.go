package supervisor

import (
	"errors"
	"fmt"
)

// Errors callers branch on, tested with errors.Is.
var (
	// ErrNotFound: no component by that name is supervised.
	ErrNotFound = errors.New("supervisor: no such component")
	// ErrRemoved: the component was removed while the call waited.
	ErrRemoved = errors.New("supervisor: component removed")
	// ErrStopped: the supervisor is not running (not started, or stopped).
	ErrStopped = errors.New("supervisor: not running")
	// ErrComponentFailed: a component awaited by WaitReady failed (BROKEN,
	// or ERRORED with no restart to come).
	ErrComponentFailed = errors.New("supervisor: component failed")
	// ErrIllegal: the command is not possible in the component's current
	// state (a start of a RUNNING component). The error wrapping it names
	// the command and the state.
	ErrIllegal = errors.New("supervisor: not possible in this state")
)

// illegalError is a command the component's current state does not allow;
// it wraps ErrIllegal.
type illegalError struct {
	command string
	state   State
}

func (e *illegalError) Error() string {
	return fmt.Sprintf("%s not possible in state %s", e.command, e.state)
}

func (e *illegalError) Unwrap() error { return ErrIllegal }

// FailedError is a component WaitReady waited for that failed; it matches
// ErrComponentFailed. Its text is what an operator needs: the component,
// its state and its last error (with the end of its stderr).
type FailedError struct {
	Name      string
	State     State
	LastError string
}

func (e *FailedError) Error() string {
	return fmt.Sprintf("%s is %s: %s", e.Name, e.State, e.LastError)
}

// Is makes errors.Is(err, ErrComponentFailed) true.
func (e *FailedError) Is(target error) bool { return target == ErrComponentFailed }
