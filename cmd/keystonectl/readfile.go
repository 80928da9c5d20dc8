package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// maxInputFile bounds a recipe, manifest or signature read from disk. The
// agent refuses larger requests anyway; the bound keeps a mistaken path
// (a disk image, a log) from being read whole into memory.
const maxInputFile = 16 << 20

// errNotRegular marks a path that is a FIFO, device, socket or folder.
var errNotRegular = errors.New("not a regular file")

// readInputFile reads a file the user named. Only regular files are read:
// opening a FIFO would wait for a writer that may never come, and a device
// may never end, so the type is checked before the open and again on the
// open descriptor (the path may change in between). O_NONBLOCK keeps that
// open from waiting either way.
func readInputFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &os.PathError{Op: "read", Path: path, Err: errNotRegular}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err = f.Stat(); err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &os.PathError{Op: "read", Path: path, Err: errNotRegular}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxInputFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxInputFile {
		return nil, fmt.Errorf("%s: larger than %d MiB", path, maxInputFile>>20)
	}
	return data, nil
}
