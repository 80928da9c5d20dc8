package supervisor

import "errors"

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
)
