package runner

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

var errESRCH = syscall.ESRCH

// pidfd is a handle on one process that stays valid across pid reuse. It
// works for processes that are not our children: it becomes readable when
// the process exits.
type pidfd struct {
	fd  int
	pid int
}

// openMember opens a pidfd for m and checks, after opening, that the pid
// still names the process that was found (same start time). ok is false
// when it is gone or the pid was reused.
func openMember(m member) (p pidfd, ok bool, err error) {
	fd, err := unix.PidfdOpen(m.PID, 0)
	if errors.Is(err, unix.ESRCH) {
		return pidfd{}, false, nil
	}
	if err != nil {
		return pidfd{}, false, fmt.Errorf("pidfd_open %d: %w", m.PID, err)
	}
	st, err := readStat(m.PID)
	if err != nil || st.StartTicks != m.StartTicks || st.State == 'Z' {
		_ = unix.Close(fd)
		return pidfd{}, false, nil
	}
	return pidfd{fd: fd, pid: m.PID}, true, nil
}

// signal sends sig to the process; a process that is already gone is not
// an error.
func (p pidfd) signal(sig syscall.Signal) error {
	err := unix.PidfdSendSignal(p.fd, sig, nil, 0)
	if err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signal pid %d: %w", p.pid, err)
	}
	return nil
}

func (p pidfd) close() { _ = unix.Close(p.fd) }

// waitExited blocks until every process has exited or the deadline passes,
// and returns those still running. It sleeps in poll(2), never spins.
func waitExited(fds []pidfd, deadline time.Time) ([]pidfd, error) {
	left := fds
	for len(left) > 0 {
		wait := time.Until(deadline)
		if wait <= 0 {
			return left, nil
		}
		pfds := make([]unix.PollFd, len(left))
		for i, p := range left {
			pfds[i] = unix.PollFd{Fd: int32(p.fd), Events: unix.POLLIN}
		}
		ms := int(wait / time.Millisecond)
		if ms == 0 {
			ms = 1
		}
		if _, err := unix.Poll(pfds, ms); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return left, fmt.Errorf("poll pidfds: %w", err)
		}
		var still []pidfd
		for i, p := range left {
			if pfds[i].Revents == 0 {
				still = append(still, p)
			}
		}
		left = still
	}
	return nil, nil
}

// waitExitNoReap blocks until the child pid has exited but leaves it a
// zombie, so that its pid, and with it its process group id, cannot be
// reused while the rest of the group is dealt with. It blocks a thread in
// waitid(2): it is for kernels without pidfds (before Linux 5.3), where
// the poller cannot hear of the exit.
func waitExitNoReap(pid int) error {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for pid %d: %w", pid, err)
		}
		return nil
	}
}
