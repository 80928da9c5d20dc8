package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keystone-edge/keystone/agent/api"
)

// Exit codes shared by every command.
const (
	exitOK    = 0 // the command did what was asked
	exitError = 1 // it failed; the reason is on stderr
	exitUsage = 2 // the command line was wrong; nothing was done
)

// FlagError is a usage error: an unknown flag or command, a missing or extra
// argument, a bad flag value. It exits with code 2 and points at the
// command's help.
type FlagError struct {
	// Command is the command path the help hint names, such as
	// "keystonectl recipe sign"; "" names the root command.
	Command string
	Err     error
}

func (e *FlagError) Error() string { return e.Err.Error() }
func (e *FlagError) Unwrap() error { return e.Err }

// flagErrorf makes a FlagError for cmd.
func flagErrorf(cmd *cobra.Command, format string, args ...any) error {
	return &FlagError{Command: cmd.CommandPath(), Err: fmt.Errorf(format, args...)}
}

// SilentError ends a command that has already told the user everything, with
// the given exit code and nothing more on stderr.
type SilentError struct {
	// Code is the exit code; 0 is taken as 1, since a SilentError is a failure.
	Code int
}

func (e *SilentError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// exitCode reports err on stderr the way the user should see it, control
// characters escaped, and returns the process exit code for it.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var silent *SilentError
	if errors.As(err, &silent) {
		if silent.Code == exitOK {
			return exitError
		}
		return silent.Code
	}
	var flagErr *FlagError
	if errors.As(err, &flagErr) {
		cmd := flagErr.Command
		if cmd == "" {
			cmd = rootName
		}
		fmt.Fprintf(stderr, "Error: %s\ntry '%s --help'\n", terminalSafe(flagErr.Err.Error(), true), cmd)
		return exitUsage
	}
	fmt.Fprintf(stderr, "Error: %s\n", terminalSafe(strings.TrimRight(err.Error(), "\n"), true))
	return exitError
}

// Positional argument checks that fail with a FlagError saying what the
// command takes.

// noArgs accepts no positional arguments.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return flagErrorf(cmd, "%s takes no arguments, got %q", cmd.CommandPath(), args[0])
	}
	return nil
}

// minArgs accepts n or more arguments, described by what (e.g. "FILE...").
func minArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return flagErrorf(cmd, "%s takes at least %d argument(s): %s", cmd.CommandPath(), n, what)
		}
		return nil
	}
}

// subcommandArgs is the Args check of a command that only groups others: any
// argument reaching it is an unknown subcommand.
func subcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", s[0])
	}
	return &FlagError{Command: cmd.CommandPath(), Err: errors.New(msg)}
}

// missingSubcommand is the RunE of a grouping command run on its own.
func missingSubcommand(cmd *cobra.Command, _ []string) error {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return flagErrorf(cmd, "%s needs a command: %s", cmd.CommandPath(), strings.Join(names, ", "))
}

// errorDocument is an error as -o json prints it on stdout.
type errorDocument struct {
	Error   string   `json:"error"`
	Code    string   `json:"code"`
	Details []string `json:"details,omitempty"`
}

// Codes of failures that are not an answer of the agent.
const (
	codeUsage       = "USAGE"       // the command line was wrong
	codeUnavailable = "UNAVAILABLE" // the agent could not be reached
	codeCanceled    = "CANCELED"    // the user interrupted the command
	codeFailed      = "FAILED"      // anything else
)

// errorDocumentOf is err as a program reads it: the agent's message, code
// and details when the agent refused, else the message and a code for the
// kind of failure.
func errorDocumentOf(err error) errorDocument {
	var apiErr *api.Error
	var flagErr *FlagError
	switch {
	case errors.As(err, &apiErr):
		return errorDocument{Error: apiErr.Message, Code: apiErr.Code, Details: apiErr.Details}
	case errors.As(err, &flagErr):
		return errorDocument{Error: flagErr.Err.Error(), Code: codeUsage}
	case errors.Is(err, api.ErrUnavailable):
		return errorDocument{Error: err.Error(), Code: codeUnavailable}
	case errors.Is(err, context.Canceled):
		return errorDocument{Error: err.Error(), Code: codeCanceled}
	}
	return errorDocument{Error: err.Error(), Code: codeFailed}
}

// writeErrorJSON prints err's document on w; a SilentError has told the
// user everything already and prints nothing.
func writeErrorJSON(w io.Writer, err error) {
	var silent *SilentError
	if errors.As(err, &silent) {
		return
	}
	_ = writeJSON(w, errorDocumentOf(err))
}
