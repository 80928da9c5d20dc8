// Command keystonectl is the KeyStone operator CLI.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "keystonectl: not built yet")
	os.Exit(1)
}
