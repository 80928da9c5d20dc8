package shim

import (
	"errors"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// LoadSeccomp installs the compiled filter prog on the calling thread only
// (the shim's exec thread, the runner's spawner thread); the filter is kept
// across fork and exec. The kernel requires no_new_privs or CAP_SYS_ADMIN.
// An empty prog is an error.
func LoadSeccomp(prog []unix.SockFilter) error {
	if len(prog) == 0 {
		return errors.New("empty seccomp program")
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	_, _, errno := unix.Syscall6(unix.SYS_PRCTL, unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER,
		uintptr(unsafe.Pointer(&fprog)), 0, 0, 0)
	runtime.KeepAlive(prog)
	if errno != 0 {
		return errno
	}
	return nil
}
