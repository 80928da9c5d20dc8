package runner

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"

	"github.com/keystone-edge/keystone/runner/cgroup"
	"golang.org/x/sys/unix"
)

// HandOver is what a Process hands to the next program image of the same
// agent process (an execve in place, see the agent's self-update): the
// process, told apart from a later one with the same pid by its start
// time, and the read ends of its output pipes as descriptors that stay
// open across exec. The component keeps running throughout; its children
// stay the agent's children because the agent's pid does not change.
type HandOver struct {
	Record
	// Stdout and Stderr are descriptors of the pipes' read ends, open and
	// without close-on-exec.
	Stdout, Stderr int
}

// HandOver stops reading the process's output, leaving what it writes from
// now on in the pipes for the next image, and returns descriptors of the
// pipes that survive an exec. A partial line already read is written to
// the log as a line of its own; nothing is lost. From here on this
// Process no longer reaps the process, reads its output or removes its
// cgroup: it waits, forever, for the exec. It returns ErrFinished when the
// process has already exited.
//
// It is meant to be followed by an exec; the caller closes the returned
// descriptors if the exec does not happen.
func (p *Process) HandOver() (HandOver, error) {
	if p.copiers != nil {
		return HandOver{}, fmt.Errorf("hand over %s: its output goes to writers of this image", p.spec.Component)
	}
	p.mu.Lock()
	if p.exited {
		p.mu.Unlock()
		return HandOver{}, ErrFinished
	}
	p.handingOver = true
	p.mu.Unlock()
	p.r.live.Add(-1) // the next image's now, not this one's

	// The poller stops reading without closing the pipes: what is still
	// in them stays there. The descriptors are the caller's from here on.
	p.r.poll.release(p)
	out, errFd := p.stdout.fd, p.stderr.fd
	p.stdout.fd, p.stderr.fd = -1, -1
	for _, fd := range []int{out, errFd} {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			closeFd(out)
			closeFd(errFd)
			return HandOver{}, fmt.Errorf("hand over %s: %w", p.spec.Component, err)
		}
	}
	return HandOver{Record: p.Record(), Stdout: out, Stderr: errFd}, nil
}

// Adopt takes over a process handed over by the previous image of this
// agent process (see Process.HandOver): spec is what it was started with
// (the same recipe renders the same spec), h the hand-over. The process
// must still be this process's child with the recorded start time;
// otherwise Adopt closes the descriptors and returns an error wrapping
// ErrNoProcess, and the caller starts the component afresh. A process that
// exited during the hand-over is adopted as exited: Done closes at once
// with its real exit status.
func (r *Runner) Adopt(spec ProcessSpec, h HandOver) (*Process, error) {
	fail := func(err error) (*Process, error) {
		closeFd(h.Stdout)
		closeFd(h.Stderr)
		return nil, fmt.Errorf("adopt %s (pid %d): %w", spec.Component, h.PID, err)
	}
	if h.Stdout < 0 || h.Stderr < 0 {
		return fail(errors.New("bad output descriptors"))
	}
	for _, fd := range []int{h.Stdout, h.Stderr} {
		unix.CloseOnExec(fd)
		if err := unix.SetNonblock(fd, true); err != nil {
			return fail(fmt.Errorf("output descriptor %d: %w", fd, err))
		}
	}
	if err := isOurChild(h.PID); err != nil {
		return fail(err)
	}
	st, err := readStat(h.PID)
	if err != nil {
		return fail(err)
	}
	if st.StartTicks != h.StartTicks {
		return fail(fmt.Errorf("%w: pid %d is another process now", ErrNoProcess, h.PID))
	}
	acct, err := CheckRunAs(spec.RunAs, spec.AllowRoot)
	if err != nil {
		return fail(err)
	}
	lg, err := r.logs.Log(spec.Component)
	if err != nil {
		return fail(err)
	}
	group := &cgroup.Group{}
	if h.CgroupPath != "" {
		if group, err = r.cgroups.Open(h.CgroupPath); err != nil {
			return fail(err)
		}
	}
	p := &Process{
		r: r, spec: spec, acct: acct, pid: h.PID, ticks: h.StartTicks, group: group, cgPath: h.CgroupPath, log: lg,
		pidfd: -1, errTail: NewTail(StderrTailBytes), done: make(chan struct{}), adopted: true,
	}
	p.stdout.fd, p.stderr.fd = h.Stdout, h.Stderr
	r.live.Add(1)
	r.adopted.Add(1)
	if err := p.watch(); err != nil {
		r.live.Add(-1)
		r.adopted.Add(-1)
		return nil, fmt.Errorf("adopt %s (pid %d): %w", spec.Component, h.PID, err)
	}
	return p, nil
}

// isOurChild checks that pid is a child of this process, running or a
// zombie, without reaping it.
func isOurChild(pid int) error {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	if errors.Is(err, unix.ECHILD) {
		return fmt.Errorf("%w: pid %d is not a child of this agent", ErrNoProcess, pid)
	}
	return err
}

// reap collects the exit status of the leader, which has exited: through
// os/exec for a process started with it whose standard input os/exec
// copies (see follow), through wait4 for the others: started directly,
// started through the shim with no stdin to copy, or adopted.
func (p *Process) reap() ExitStatus {
	if p.cmd != nil {
		waitErr := p.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(waitErr, &ee) {
			waitErr = nil // an exit status, not a failure to wait
		}
		return exitStatusOf(p.cmd.ProcessState, waitErr)
	}
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(p.pid, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return ExitStatus{Code: -1, Err: fmt.Errorf("wait for pid %d: %w", p.pid, err)}
		}
		return exitStatusOfWait(ws)
	}
}
