package runner

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/keystone-edge/keystone/runner/cgroup"
	"github.com/keystone-edge/keystone/runner/logs"
)

const (
	// sweepBound is how long the runner waits for SIGKILLed processes to
	// be gone before it reports them.
	sweepBound = 10 * time.Second
	// drainTimeout is how long output is still read after the component's
	// processes are gone; only a process that escaped both the process
	// group and the cgroup can hold the pipes open that long.
	drainTimeout = time.Second
)

// Process is a started component process: the handle the supervisor keeps.
// Its methods are safe for concurrent use. Once the process has exited
// (Done is closed) every process of its group and cgroup has been killed
// and waited for, the cgroup is removed and the output is in the log.
type Process struct {
	r      *Runner
	spec   ProcessSpec
	acct   *Account
	cmd    *exec.Cmd // nil unless os/exec copies its stdin (see follow)
	pid    int
	ticks  uint64
	group  *cgroup.Group
	cgPath string
	log    *logs.Log

	// The output goes to the log through the Runner's poller (poller.go),
	// which also waits for the exit: stdout and stderr are its pipes and
	// pollID and pidfd its registration, guarded by r.poll.mu. A process
	// whose spec takes its output (a plugin run) has it read by two
	// goroutines of its own instead (copiers).
	stdout, stderr pipe
	copiers        *copiers
	pollID         uint64
	pidfd          int   // -1 when not watched
	errTail        *Tail // the end of stderr, for the exit status
	readers        sync.WaitGroup
	done           chan struct{}

	stopMu sync.Mutex // one Stop sequence at a time

	// adopted: taken over from the previous image of this agent process
	// (Runner.Adopt).
	adopted bool
	// shim: started through the shim (cmd may be released all the same).
	shim bool

	mu     sync.Mutex
	exited bool // the leader has exited: no more signals to its group id
	// handingOver: HandOver was called; the next image owns the process.
	handingOver bool
	stopping    bool
	forced      bool
	status      ExitStatus
	// finished: done is closed; afterDone is what AfterDone asked to call
	// then.
	finished  bool
	afterDone []func()
}

// Record is what must be stored about a started process so that an agent
// started after a crash can find it again (see Runner.StopOrphan).
type Record struct {
	Component  string // the component it ran for
	PID        int    // the main process
	StartTicks uint64 // field 22 of /proc/PID/stat; tells the process from a later one with the same pid
	PGID       int    // its process group; 0 = PID (the runner makes every process its group's leader)
	CgroupPath string // its cgroup, as Process.CgroupPath; "" = none
}

// Component is the component the process runs for.
func (p *Process) Component() string { return p.spec.Component }

// Pid is the process id.
func (p *Process) Pid() int { return p.pid }

// Pgid is the id of the process group the component runs in (its own).
func (p *Process) Pgid() int { return p.pid }

// StartTicks is the process's start time from /proc/PID/stat field 22.
func (p *Process) StartTicks() uint64 { return p.ticks }

// CgroupPath is the component's cgroup; "" when it runs without one.
func (p *Process) CgroupPath() string { return p.cgPath }

// Record is what to store about the process.
func (p *Process) Record() Record {
	return Record{Component: p.spec.Component, PID: p.pid, StartTicks: p.ticks, PGID: p.pid, CgroupPath: p.cgPath}
}

// Done is closed when the process has exited and everything it left has
// been cleaned up; Wait then returns at once.
func (p *Process) Done() <-chan struct{} { return p.done }

// AfterDone calls f once Done is closed, from the goroutine that closed
// it, or at once in a goroutine of its own when Done is already closed.
// It spares a caller that only needs to hear of the end a goroutine
// blocked on Done. f must not block.
func (p *Process) AfterDone(f func()) {
	p.mu.Lock()
	if !p.finished {
		p.afterDone = append(p.afterDone, f)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	go f()
}

// finish closes done and calls what AfterDone asked for.
func (p *Process) finish() {
	p.mu.Lock()
	p.finished = true
	fns := p.afterDone
	p.afterDone = nil
	p.mu.Unlock()
	close(p.done)
	for _, f := range fns {
		f()
	}
}

// Wait blocks until the process has exited (see Done) and returns how.
func (p *Process) Wait() ExitStatus {
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// Signal sends sig to the component's whole process group. It returns
// ErrFinished once the process has exited.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return ErrFinished
	}
	if err := syscall.Kill(-p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// kill sends SIGKILL to the group and the cgroup, marking the stop forced.
func (p *Process) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return
	}
	p.forced = true
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	if err := p.group.Kill(); err != nil {
		p.r.log.Warn("kill cgroup", "component", p.spec.Component, "err", err)
	}
}

// copiers are the two goroutines that read the output of a process whose
// spec takes it (ProcessSpec.Stdout, Stderr): a plugin run, short and
// rare, whose writers may block, which the poller must never do.
type copiers struct {
	outR, errR *os.File
}

// follow starts reading the process's output from the parent's pipe ends
// outR and errR (it takes them over) and waiting for its exit, which ends
// in p.exit.
func (p *Process) follow(outR, errR *os.File) error {
	p.stdout.fd, p.stderr.fd, p.pidfd = -1, -1, -1
	cmd := p.cmd // nil for a direct start
	p.shim = cmd != nil
	if cmd != nil && p.spec.Stdin == nil {
		// Nothing for os/exec to do at the end (its Wait would only
		// reap): the process is reaped with wait4, and the Cmd, with its
		// pidfd and the closed files it still names, is not kept for the
		// component's whole life. It is released once the process is
		// watched; until then a failed start reaps through it.
		p.cmd = nil
	}
	if p.spec.Stdout != nil || p.spec.Stderr != nil {
		p.copiers = &copiers{outR: outR, errR: errR}
	} else {
		var err error
		if p.stdout.fd, err = takeFd(outR); err != nil {
			_ = errR.Close()
			return fmt.Errorf("start %s: stdout: %w", p.spec.Component, err)
		}
		if p.stderr.fd, err = takeFd(errR); err != nil {
			closeFd(p.stdout.fd)
			return fmt.Errorf("start %s: stderr: %w", p.spec.Component, err)
		}
	}
	if err := p.watch(); err != nil {
		return err
	}
	if cmd != nil && p.cmd == nil {
		_ = cmd.Process.Release()
	}
	return nil
}

// watch starts the copiers, if any, and hands the pipes with a descriptor
// (p.stdout, p.stderr) and the exit to the poller. On error the pipes are
// closed (which ends the copiers).
func (p *Process) watch() error {
	if c := p.copiers; c != nil {
		p.readers.Add(2)
		if p.spec.Stdout != nil {
			go p.copyOut(p.spec.Stdout, c.outR)
		} else {
			go p.capture(logs.Stdout, c.outR)
		}
		var stderr io.Writer = p.errTail
		if p.spec.Stderr != nil {
			stderr = io.MultiWriter(p.errTail, &keepWriting{w: p.spec.Stderr})
		}
		go p.capture(logs.Stderr, io.TeeReader(c.errR, stderr))
	}
	p.stdout.lines, p.stderr.lines = p.log.Splitter(logs.Stdout), p.log.Splitter(logs.Stderr)
	exitWatched, err := p.r.poll.watch(p)
	if err != nil {
		p.closeOutput()
		return err
	}
	if !exitWatched {
		// No pidfd (Linux before 5.3): a thread blocks in waitid.
		go func() { p.exit(waitExitNoReap(p.pid)) }()
	}
	return nil
}

// stopReading ends the reading of output still coming (see drainTimeout).
func (p *Process) stopReading() {
	p.r.poll.stopReading(p)
	if c := p.copiers; c != nil {
		_ = c.outR.Close()
		_ = c.errR.Close()
	}
}

// closeOutput closes the parent's pipe ends, once nothing reads them.
func (p *Process) closeOutput() {
	closeFd(p.stdout.fd)
	closeFd(p.stderr.fd)
	p.stdout.fd, p.stderr.fd = -1, -1
	if c := p.copiers; c != nil {
		_ = c.outR.Close()
		_ = c.errR.Close()
	}
}

// capture copies one output pipe into the log until it closes (copiers).
func (p *Process) capture(stream logs.Stream, f io.Reader) {
	defer p.readers.Done()
	err := p.log.Capture(stream, f)
	if err != nil && !errors.Is(err, logs.ErrClosed) {
		p.r.log.Warn("component output lost", "component", p.spec.Component, "stream", stream.String(), "err", err)
	}
}

// copyOut copies the stdout pipe to w until it closes; after a write error
// the rest is read and dropped, so that the process never blocks on a full
// pipe (copiers).
func (p *Process) copyOut(w io.Writer, f *os.File) {
	defer p.readers.Done()
	_, _ = io.Copy(&keepWriting{w: w}, f)
}

// keepWriting passes writes on to w until one fails, then swallows the
// rest: a reader copying a pipe into it never stops reading early.
type keepWriting struct {
	w      io.Writer
	failed bool
}

func (k *keepWriting) Write(b []byte) (int, error) {
	if !k.failed {
		if _, err := k.w.Write(b); err != nil {
			k.failed = true
		}
	}
	return len(b), nil
}

// exit owns the process's end, once the leader has exited (noReapErr:
// the wait for it failed): it kills what is left of the group and cgroup
// while the leader's pid is still held (so the group id cannot be
// reused), reaps, reads the OOM counter, lets the output drain, removes
// the cgroup and publishes the status. It does nothing when the process
// is being handed over: the next image reaps it (it stays a zombie until
// then).
func (p *Process) exit(noReapErr error) {
	p.mu.Lock()
	if p.handingOver {
		p.mu.Unlock()
		return
	}
	p.exited = true
	p.mu.Unlock()
	defer p.finish()
	defer p.r.live.Add(-1)
	if p.adopted {
		defer p.r.adopted.Add(-1)
	}
	// From here on this goroutine is the only user of p.group.

	t := targets{pgid: p.pid, minTicks: p.ticks, group: p.group}
	if noReapErr != nil || p.group.Tracked() {
		// The cgroup holds every descendant (the shim was placed before it
		// could fork), so scanning /proc for the group adds nothing; and
		// without the leader held the group id could be someone else's.
		t.pgid = 0
	}
	if _, err := t.killAll(sweepBound); err != nil {
		p.r.log.Warn("processes left after exit", "component", p.spec.Component, "err", err)
	}
	status := p.reap()
	if n, err := p.group.OOMKills(); err != nil {
		p.r.log.Warn("read OOM kills", "component", p.spec.Component, "err", err)
	} else {
		status.OOMKilled = n > 0
	}

	force := time.AfterFunc(drainTimeout, p.stopReading)
	p.readers.Wait()
	force.Stop()
	p.closeOutput()

	if err := p.group.Delete(); err != nil {
		p.r.log.Warn("remove cgroup", "component", p.spec.Component, "err", err)
	}
	p.mu.Lock()
	status.Stopped, status.Forced = p.stopping, p.forced
	status.StderrTail = p.errTail.String()
	p.status = status
	p.mu.Unlock()
}
