// Command keystone-agent is the KeyStone device daemon.
package main

import (
	"fmt"
	"os"

	"github.com/keystone-edge/keystone/runner"
)

func main() {
	// The runner re-executes this binary as the shim between fork and exec
	// of every component process; that must come before anything else.
	if runner.IsShim(os.Args) {
		runner.ShimMain()
	}
	if len(os.Args) < 2 || os.Args[1] != "run" {
		fmt.Fprintln(os.Stderr, "usage: keystone-agent run --config agent.toml")
		os.Exit(2)
	}
	fmt.Fprintln(os.Stderr, "keystone-agent: not built yet")
	os.Exit(1)
}
