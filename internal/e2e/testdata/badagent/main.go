// Command badagent is a bad agent release for the self-update tests: a real
// Linux executable that fails the way its build says (-ldflags
// "-X main.mode=exit1|segv|hang"): it exits 1 at once, dies of SIGSEGV, or
// hangs without ever telling its service manager it is ready.
package main

import (
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"
)

var mode = "exit1"

func main() {
	fmt.Fprintf(os.Stderr, "badagent: %s\n", mode)
	switch mode {
	case "segv":
		// The Go runtime turns SIGSEGV into a panic; put the default action
		// back so that the process really dies of the signal.
		var act [4]uint64
		_, _, _ = syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(syscall.SIGSEGV), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
		_ = syscall.Kill(os.Getpid(), syscall.SIGSEGV)
		time.Sleep(time.Second)
	case "hang":
		for {
			time.Sleep(time.Hour)
		}
	}
	os.Exit(1)
}
