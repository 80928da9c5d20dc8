package deploy

import (
	"errors"
	"fmt"
	"strings"
)

// Error categories callers branch on with errors.Is.
var (
	// ErrInvalid: the deployment was refused before anything was queued or
	// changed; the error is a *ValidationError listing every problem.
	ErrInvalid = errors.New("deploy: invalid deployment")
	// ErrNotFound: no deployment by that id, or nothing to roll back to.
	ErrNotFound = errors.New("deploy: not found")
	// ErrConflict: the request contradicts what is recorded: a deployment id
	// reused for a different manifest, or a cancel of a finished deployment.
	ErrConflict = errors.New("deploy: conflict")
)

// categoryError is a message that matches a category sentinel (ErrNotFound,
// ErrConflict) without repeating its text: operators read the message,
// callers branch on the category.
type categoryError struct {
	msg      string
	category error
	cause    error // what the store said, for errors.Is; may be nil
}

func (e *categoryError) Error() string        { return e.msg }
func (e *categoryError) Is(target error) bool { return target == e.category }
func (e *categoryError) Unwrap() error        { return e.cause }

func notFound(cause error, format string, args ...any) error {
	return &categoryError{msg: fmt.Sprintf(format, args...), category: ErrNotFound, cause: cause}
}

func conflict(format string, args ...any) error {
	return &categoryError{msg: fmt.Sprintf(format, args...), category: ErrConflict}
}

// Code is why a deployment failed or was refused, as recorded
// (Deployment.ErrorCode) and as jobs report it (error_code): callers and
// the decision core branch on it, never on an error's text.
type Code string

// Error codes a failed or canceled deployment records. Fetch failures
// record the ota.Reason instead: DOWNLOAD_FAILED, HASH_MISMATCH,
// SIGNATURE_INVALID, METADATA_EXPIRED, ROLLBACK_ATTACK, UNSAFE_ARCHIVE or
// DISK_FULL.
const (
	// CodeValidation: the manifest or a recipe is wrong (also the code of a
	// *ValidationError with no more specific one).
	CodeValidation Code = "VALIDATION_FAILED"
	// CodeInstallFailed: an install script failed or timed out, or a
	// component's work folder could not be prepared.
	CodeInstallFailed Code = "INSTALL_FAILED"
	// CodeComponentFailed: a started component failed (BROKEN, or ERRORED
	// with no restart to come) before the deployment could commit.
	CodeComponentFailed Code = "COMPONENT_FAILED"
	// CodeHealthTimeout: a component was not RUNNING and healthy within
	// health_timeout.
	CodeHealthTimeout Code = "HEALTH_TIMEOUT"
	// CodeStopTimeout: stopping the removed and changed components did not
	// finish within the sum of their stop timeouts.
	CodeStopTimeout Code = "STOP_TIMEOUT"
	// CodeCanceled: canceled by deploy cancel or preempted by a newer
	// deployment.
	CodeCanceled Code = "CANCELED"
	// CodeInternal: the store or the supervisor failed.
	CodeInternal Code = "INTERNAL"
)

// Problem is one reason a deployment was refused.
type Problem struct {
	// Code is CodeValidation for a wrong manifest or recipe, or the ota
	// reason (SIGNATURE_INVALID, DOWNLOAD_FAILED, ...) when a signature or
	// the component repository refused it.
	Code Code
	// Message says what is wrong and where, e.g.
	// "hello.recipe.toml:14:3: lifecycle.run.restart_policy: must be one of
	// never, on-failure, always".
	Message string
}

// ValidationError lists every problem found in a deployment that was
// refused; nothing was queued or changed. It matches ErrInvalid.
type ValidationError struct {
	Problems []Problem // never empty
}

// Error returns the single problem, or a count followed by one problem a
// line.
func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return "invalid deployment: " + e.Problems[0].Message
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid deployment: %d problems:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.Message)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Code is the most specific code of the problems: the first that is not
// CodeValidation, else CodeValidation.
func (e *ValidationError) Code() Code {
	for _, p := range e.Problems {
		if p.Code != CodeValidation {
			return p.Code
		}
	}
	return CodeValidation
}

// Messages returns each problem's message, in order.
func (e *ValidationError) Messages() []string {
	out := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = p.Message
	}
	return out
}

// failure is why a deployment did not commit: the code it records and the
// cause.
type failure struct {
	code Code
	err  error
}

// invalid is a problem with the manifest or a recipe.
func invalid(format string, args ...any) Problem {
	return Problem{Code: CodeValidation, Message: fmt.Sprintf(format, args...)}
}

func fail(code Code, format string, args ...any) *failure {
	return &failure{code: code, err: fmt.Errorf(format, args...)}
}
