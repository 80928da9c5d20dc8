// Command keystonectl is the KeyStone operator CLI: it talks to the local
// agent over its Unix socket, manages signing keys and checks and signs
// recipes (SPEC §8).
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes the command line args with the given streams and returns the
// process exit code: 0 on success, 1 on failure, 2 on a usage error.
// An interrupt or SIGTERM cancels the command's context.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	opts := &options{In: stdin, Out: stdout, ErrOut: stderr, Getenv: os.Getenv}
	root := newRootCmd(opts)
	root.SetArgs(args)
	return exitCode(root.ExecuteContext(ctx), stderr)
}
