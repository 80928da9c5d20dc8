package runner

import (
	"errors"
	"fmt"
)

// ErrFinished says the process has already exited.
var ErrFinished = errors.New("runner: process has exited")

// SetupError is a failure in the new process before it became the
// component's program: the run_as user could not be taken on, the working
// directory entered, the program exec'd, and so on. The component never
// ran; this is never an exit status of the component.
type SetupError struct {
	Component string
	Step      string // "exec", "chdir", "setuid", "set open_files", ...
	Err       error
}

// Error says which component failed at which step.
func (e *SetupError) Error() string {
	return fmt.Sprintf("start %s: %s: %v", e.Component, e.Step, e.Err)
}

// Unwrap returns the cause.
func (e *SetupError) Unwrap() error { return e.Err }
