package plugin

import (
	"errors"
	"strings"
)

// Why a run failed; a *RunError wraps one of them.
var (
	// ErrInvalidOutput: the output document was not valid JSON, broke the
	// contract, or gave names or labels Prometheus refuses (*OutputError).
	ErrInvalidOutput = errors.New("plugin: invalid output")
	// ErrTimeout: the run did not finish within the plugin's timeout.
	ErrTimeout = errors.New("plugin: timed out")
	// ErrExit: the program exited with a non-zero status or was killed.
	ErrExit = errors.New("plugin: failed")
	// ErrOutputTooLarge: the program printed more than the output cap.
	ErrOutputTooLarge = errors.New("plugin: output too large")
	// ErrStart: the program could not be started (a missing file, a bad
	// run_as, a module that does not compile or fit its memory_limit).
	ErrStart = errors.New("plugin: cannot start")
)

// RunError is a failed run: which plugin, why (one of the errors above, by
// errors.Is), and the end of what it wrote on stderr. Its message never
// holds a secret: the context document is not part of it.
type RunError struct {
	Component string
	// Err is the reason; it wraps one of the sentinel errors.
	Err error
	// Stderr is the tail of the program's standard error; "" when it
	// printed nothing.
	Stderr string
}

// Error says what failed and shows the stderr tail.
func (e *RunError) Error() string {
	var b strings.Builder
	b.WriteString("plugin ")
	b.WriteString(e.Component)
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	if e.Stderr != "" {
		b.WriteString("; stderr: ")
		b.WriteString(e.Stderr)
	}
	return b.String()
}

// Unwrap returns the reason.
func (e *RunError) Unwrap() error { return e.Err }
