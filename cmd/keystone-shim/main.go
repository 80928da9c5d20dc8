// Command keystone-shim is the runner's shim as a program of its own: what
// a component's process runs between fork and exec (package runner/shim).
// The agent uses it when it lies next to the agent's executable; it links
// only the shim, so it starts faster than the agent re-executed as its own
// shim, which is the floor of a restart's latency. It is not run by hand.
//
// This file holds only main.
package main

import (
	"fmt"
	"os"

	"github.com/keystone-edge/keystone/runner/shim"
)

func main() {
	if shim.Is(os.Args) {
		shim.Main()
	}
	fmt.Fprintf(os.Stderr, "keystone-shim is started by keystone-agent between fork and exec of a component (%s LABEL, request on fd %d); it is not run by hand\n", shim.Arg, shim.RequestFD)
	os.Exit(2)
}
