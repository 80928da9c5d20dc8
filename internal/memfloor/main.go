// Command memfloor is the smallest program that links the Go runtime the
// agent does and opens the agent's store (store.Open: WAL, migrations,
// the reader pool), then idles. The memory benchmarks measure its PSS
// beside the agent's, in the same run and the same way, as the floor no
// agent can go below. It prints "ready" once the store is open and exits
// when its stdin closes. It is a test program, never shipped.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/keystone-edge/keystone/store"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: memfloor DB")
		os.Exit(2)
	}
	st, err := store.Open(context.Background(), os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "memfloor:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = st.Close()
}
