package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// interruptGrace is how long a command may take to wind down after Ctrl-C
// or SIGTERM canceled its context. Commands that wait on the agent return
// at once with their own message (a deployment goes on without us); work
// that cannot be canceled halfway, such as parsing a file, is abandoned.
const interruptGrace = 2 * time.Second

// untilSignal runs command with a context that the first signal from
// signals cancels, and returns its exit code. A command still running
// interruptGrace after that signal, or at a second signal, is abandoned
// with the shell's code for the signal (130 for SIGINT, 143 for SIGTERM),
// so keystonectl always ends when asked, whatever it was doing.
func untilSignal(signals <-chan os.Signal, grace time.Duration, stderr io.Writer, command func(context.Context) int) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- command(ctx) }()

	var sig os.Signal
	select {
	case code := <-done:
		return code
	case sig = <-signals:
		cancel()
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case code := <-done:
		return code
	case <-timer.C:
	case sig = <-signals:
	}
	fmt.Fprintf(stderr, "Error: interrupted by %s\n", signalName(sig))
	return signalExitCode(sig)
}

// signalExitCode is 128 + the signal's number, as shells report it.
func signalExitCode(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return exitError
}

func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}
