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
	opts := &options{In: stdin, Out: stdout, ErrOut: stderr, Getenv: os.Getenv}
	root := newRootCmd(opts)
	root.SetArgs(args)
	return exitCode(root.ExecuteContext(ctx), stderr)
}
