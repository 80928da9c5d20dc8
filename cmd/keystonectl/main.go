// Command keystonectl is the KeyStone operator CLI: it talks to the local
// agent over its Unix socket, manages signing keys and checks and signs
// recipes.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	os.Exit(untilSignal(signals, interruptGrace, os.Stderr, func(ctx context.Context) int {
		return runContext(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	}))
}

// run executes the command line args with the given streams and returns the
// process exit code: 0 on success, 1 on failure, 2 on a usage error.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, stdin, stdout, stderr)
}

// runContext is run under ctx; canceling ctx cancels the command.
func runContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return execute(ctx, &options{In: stdin, Out: stdout, ErrOut: stderr, Getenv: os.Getenv}, args)
}

// execute runs the command line args with opts and returns the exit code.
func execute(ctx context.Context, opts *options, args []string) int {
	stdout := opts.Out
	out := &countingWriter{w: stdout}
	opts.Out = out
	root := newRootCmd(opts)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil && opts.Output == formatJSON && out.n == 0 {
		// A program reading -o json gets a document for a failure too,
		// unless the command already printed its result (problems
		// included).
		writeErrorJSON(stdout, err)
	}
	return exitCode(err, opts.ErrOut)
}
