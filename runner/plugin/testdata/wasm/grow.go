// grow allocates and touches MiB pieces up to the size given as its first
// argument, then reports it.
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	mib, err := strconv.Atoi(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var keep [][]byte
	for range mib {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		keep = append(keep, b)
	}
	fmt.Printf(`{"metrics":[{"name":"allocated_bytes","type":"gauge","value":%d}]}`+"\n", len(keep)<<20)
}
