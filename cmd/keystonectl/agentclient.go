package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/keystone-edge/keystone/agent/api"
)

// client returns a client for the agent at --socket. Commands close it
// when they are done.
func (o *options) client() *api.Client {
	return api.NewClient(o.Socket)
}

// now reads the clock for "3s ago" columns.
func (o *options) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

// interactive reports whether progress may be drawn: the output is for
// people (-o table) and stdout is a terminal. Progress itself goes to
// stderr, so that stdout stays the result alone.
func (o *options) interactive() bool {
	if o.Output == formatJSON {
		return false
	}
	if o.Terminal != nil {
		return o.Terminal()
	}
	out := o.Out
	if c, ok := out.(*countingWriter); ok {
		out = c.w
	}
	f, ok := out.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// agentError rewrites an error from the agent API for the user: an answer
// from the agent shows its message, code and every detail; not reaching
// the agent says where it was looked for and how to point elsewhere. what
// says what was being done ("restart com.example.hello"); "" adds nothing.
func agentError(what string, err error) error {
	if err == nil {
		return nil
	}
	prefix := ""
	if what != "" {
		prefix = what + ": "
	}
	var apiErr *api.Error
	switch {
	case errors.As(err, &apiErr):
		// The code goes on the first line; the agent may already have put
		// its details on the following ones.
		head, rest, _ := strings.Cut(apiErr.Message, "\n")
		var b strings.Builder
		fmt.Fprintf(&b, "%s%s [%s]", prefix, head, apiErr.Code)
		if rest != "" {
			b.WriteString("\n" + rest)
		}
		for _, d := range apiErr.Details {
			if !strings.Contains(apiErr.Message, d) {
				b.WriteString("\n  " + d)
			}
		}
		return &codedError{msg: b.String(), code: apiErr.Code, err: err}
	case errors.Is(err, api.ErrUnavailable):
		return fmt.Errorf("%scannot reach the agent: %w\nis keystone-agent running? --socket or KEYSTONE_SOCKET names its socket", prefix, err)
	default:
		return fmt.Errorf("%s%w", prefix, err)
	}
}

// componentError is agentError for a command on component name: an
// unknown name says so plainly and where to find the names.
func componentError(what, name string, err error) error {
	if api.ErrorCode(err) == api.CodeNotFound {
		return &codedError{
			msg:  fmt.Sprintf("%s: no component %q on this agent (keystonectl component list shows them) [%s]", what, name, api.CodeNotFound),
			code: api.CodeNotFound,
			err:  err,
		}
	}
	return agentError(what, err)
}

// deploymentError is agentError for an answer about one deployment, whose
// message names it already: an unknown id says where to find the ids.
func deploymentError(err error) error {
	err = agentError("", err)
	var ce *codedError
	if errors.As(err, &ce) && ce.code == api.CodeNotFound {
		head, rest, _ := strings.Cut(ce.msg, " [")
		ce.msg = head + " (keystonectl deploy list shows them) [" + rest
	}
	return err
}

// codedError is an agent answer as shown to the user; it keeps the
// original error (and so its code) for errors.As.
type codedError struct {
	msg  string
	code string
	err  error
}

func (e *codedError) Error() string { return e.msg }
func (e *codedError) Unwrap() error { return e.err }
