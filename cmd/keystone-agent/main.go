// Command keystone-agent is the KeyStone device daemon.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "run" {
		fmt.Fprintln(os.Stderr, "usage: keystone-agent run --config agent.toml")
		os.Exit(2)
	}
	fmt.Fprintln(os.Stderr, "keystone-agent: not built yet")
	os.Exit(1)
}
