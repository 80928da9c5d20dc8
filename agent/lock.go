package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the file in data_dir an agent holds locked while it runs.
const LockFile = "agent.lock"

// ErrLocked: another agent holds the data folder.
var ErrLocked = errors.New("agent: data folder in use by another agent")

// LockedError says which data folder is held and, when the holder wrote it,
// by which process. It wraps ErrLocked.
type LockedError struct {
	Path string // the lock file
	PID  int    // the holder's pid; 0 when unknown
}

func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("data folder %s is in use by another agent (pid %d holds %s)",
			filepath.Dir(e.Path), e.PID, e.Path)
	}
	return fmt.Sprintf("data folder %s is in use by another agent (%s is locked)", filepath.Dir(e.Path), e.Path)
}

// Unwrap returns ErrLocked.
func (e *LockedError) Unwrap() error { return ErrLocked }

// dirLock is an exclusive flock on data_dir/agent.lock. The kernel drops it
// when the process ends, however it ends, so a crashed agent never leaves a
// stale lock behind.
type dirLock struct {
	f *os.File
}

// lockDataDir takes the lock of dataDir at once or fails with a
// *LockedError; it never waits for another agent. The holder's pid is
// written into the file for the next one's error message.
func lockDataDir(dataDir string) (*dirLock, error) {
	path := filepath.Join(dataDir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid := readPID(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &LockedError{Path: path, PID: pid}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write lock %s: %w", path, err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write lock %s: %w", path, err)
	}
	return &dirLock{f: f}, nil
}

func readPID(f *os.File) int {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// release empties the pid and drops the lock. The file stays: removing it
// would let a third agent lock a new file while a second waits on the old.
func (l *dirLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := l.f.Close() // closing the last descriptor drops the flock
	l.f = nil
	return err
}
