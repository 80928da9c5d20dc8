package config

import (
	"fmt"
	"strings"
)

// Error is one problem in a configuration file.
type Error struct {
	File string // the name given to Load or Parse; "" when none
	// Line and Column locate the key, 1-based; both 0 when the problem has
	// no place in the file (a required key that is absent).
	Line, Column int
	// Key is the dotted path of the key, TOML-quoted where needed
	// (components."com.example.hello".config); "" for the file as a whole.
	Key string
	Msg string
}

// Error formats the problem as file:line:col: key: message, leaving out
// the parts that are unknown, e.g. "agent.toml:7:1: mqtt.brokr: unknown key".
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "%d:%d: ", e.Line, e.Column)
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in one file, in file order (problems
// with no position last). Load and Parse return it as their error when the
// file is wrong; use errors.As to get at the individual problems.
type ErrorList []*Error

// Error returns one problem a line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// has reports whether a problem was already recorded for key, so that a
// key refused while decoding is not reported again by validation.
func (l ErrorList) has(key string) bool {
	for _, e := range l {
		if e.Key == key {
			return true
		}
	}
	return false
}
