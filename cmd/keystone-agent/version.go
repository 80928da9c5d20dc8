package main

import (
	"fmt"
	"io"
	"runtime"
)

// commit and date are set at build time with version (see the Makefile's
// build target): -ldflags "-X main.commit=abc1234 -X main.date=2026-11-25T10:00:00Z".
var (
	commit = "unknown"
	date   = "unknown"
)

// printVersion prints the version line: version, commit, build date, Go
// release and platform.
func printVersion(stdout io.Writer) int {
	fmt.Fprintf(stdout, "keystone-agent %s (commit %s, built %s, %s %s/%s)\n",
		version, commit, date, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}
