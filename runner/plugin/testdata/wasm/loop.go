// loop never ends: the timeout must stop it.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "looping")
	n := 0
	for {
		n++
	}
}
