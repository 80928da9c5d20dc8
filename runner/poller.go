package runner

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/keystone-edge/keystone/runner/logs"
	"golang.org/x/sys/unix"
)

// pollReadBytes is the most the poller reads from one pipe per wake-up: a
// component that writes without pause is read in turn with the others,
// never instead of them. It is also the size of the one buffer every read
// goes through.
const pollReadBytes = 32 << 10

// What an epoll event is about: its data holds the process's poll id
// shifted left by two, and one of these.
const (
	evStdout = iota
	evStderr
	evExit
)

// poller reads the stdout and stderr of every process of a Runner into
// their logs and hears each one's exit, all in one goroutine: an epoll
// instance holds each process's output pipes (level-triggered, read
// without blocking) and its pidfd (readable once the process has exited),
// and the goroutine waits for that instance in the Go runtime's poller, so
// that no OS thread is blocked. Three goroutines per process, two blocked
// reads and an exit wait, were most of what a component cost the agent
// (docs/benchmarks.md).
//
// On output it reads at most pollReadBytes from the pipe, feeds a
// Splitter (and the stderr tail) and goes on to the next ready pipe; the
// pipe is reported again as long as it holds more. A log write that is
// slow (a slow disk) holds every process's reading up, and their pipes
// fill; nothing is lost. The end of a pipe (EOF, all writers gone) ends
// its stream. On an exit it hands the process's end, which waits for the
// rest of the process group and may take seconds, to a goroutine of its
// own (Process.exit).
//
// The goroutine runs while something is watched: it is started by the
// first watch and ends once every process it watched has ended or been
// handed over; the next watch starts it again.
type poller struct {
	log *slog.Logger

	mu     sync.Mutex
	ep     *os.File // the epoll instance, in the runtime's poller; nil while not running
	epfd   int
	procs  map[uint64]*Process // watched, by poll id
	lastID uint64
}

// pipe is the parent's end of a process's stdout or stderr as the poller
// reads it. Guarded by poller.mu.
type pipe struct {
	fd      int  // the read end, non-blocking and close-on-exec; -1: none or closed
	reading bool // registered with the poller and not at its end
	lines   logs.Splitter
	err     error // why output was lost: the first failed log write, a read error
}

// watch starts reading p's output pipes that have a descriptor and
// waiting for p's exit, on which it calls p.exit. exitWatched is false
// when the kernel cannot give a pidfd for p (Linux before 5.3): the caller
// then waits for the exit itself. On error nothing is watched.
func (pl *poller) watch(p *Process) (exitWatched bool, err error) {
	pidfd, perr := unix.PidfdOpen(p.pid, 0)
	if perr != nil {
		pidfd = -1
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.ep == nil {
		if err := pl.start(); err != nil {
			closeFd(pidfd)
			return false, err
		}
	}
	pl.lastID++
	id := pl.lastID
	var added []int
	add := func(fd int, what uint64) error {
		ev := unix.EpollEvent{Events: unix.EPOLLIN}
		data := id<<2 | what
		ev.Fd, ev.Pad = int32(uint32(data)), int32(uint32(data>>32))
		if err := unix.EpollCtl(pl.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return err
		}
		added = append(added, fd)
		return nil
	}
	for _, w := range []struct {
		fd   int
		what uint64
	}{{p.stdout.fd, evStdout}, {p.stderr.fd, evStderr}, {pidfd, evExit}} {
		if w.fd < 0 {
			continue
		}
		if err := add(w.fd, w.what); err != nil {
			for _, fd := range added {
				_ = unix.EpollCtl(pl.epfd, unix.EPOLL_CTL_DEL, fd, nil)
			}
			closeFd(pidfd)
			pl.wakeIfIdle()
			return false, fmt.Errorf("watch the output of %s: %w", p.spec.Component, err)
		}
	}
	p.pollID, p.pidfd = id, pidfd
	for _, pp := range []*pipe{&p.stdout, &p.stderr} {
		if pp.fd >= 0 {
			pp.reading = true
			p.readers.Add(1)
		}
	}
	if len(added) > 0 {
		pl.procs[id] = p
	}
	pl.wakeIfIdle()
	return pidfd >= 0, nil
}

// start makes the epoll instance and starts the goroutine; pl.mu is held.
func (pl *poller) start() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll: %w", err)
	}
	// Non-blocking, so that os.NewFile puts it in the runtime's poller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		_ = unix.Close(epfd)
		return fmt.Errorf("epoll: %w", err)
	}
	ep := os.NewFile(uintptr(epfd), "epoll")
	if err := ep.SetReadDeadline(time.Time{}); err != nil {
		// Not in the runtime's poller: waiting would block a thread.
		_ = ep.Close()
		return fmt.Errorf("epoll: %w", err)
	}
	pl.ep, pl.epfd = ep, epfd
	if pl.procs == nil {
		pl.procs = map[uint64]*Process{}
	}
	go pl.run(ep, epfd)
	return nil
}

// wakeIfIdle wakes the goroutine when nothing is watched any more, so
// that it ends; pl.mu is held.
func (pl *poller) wakeIfIdle() {
	if len(pl.procs) == 0 && pl.ep != nil {
		_ = pl.ep.SetReadDeadline(time.Unix(1, 0))
	}
}

// run is the poller's goroutine.
func (pl *poller) run(ep *os.File, epfd int) {
	buf := make([]byte, pollReadBytes)
	events := make([]unix.EpollEvent, 64)
	rc, rcErr := ep.SyscallConn()
	for {
		var n int
		var woken bool
		if rcErr == nil {
			// Wait in the runtime's poller until the epoll instance has
			// events, then take them without blocking.
			err := rc.Read(func(fd uintptr) bool {
				n = epollWait(int(fd), events, 0)
				return n > 0
			})
			woken = errors.Is(err, os.ErrDeadlineExceeded)
			if err != nil && !woken {
				pl.log.Error("epoll instance not in the runtime's poller; waiting in a thread", "err", err)
				rcErr = err
			}
		}
		if rcErr != nil {
			// The runtime cannot wait for the instance after all (start
			// checked that it could): block this goroutine's thread in
			// epoll_wait instead, still one thread for every process.
			n = epollWait(epfd, events, -1)
		}
		pl.mu.Lock()
		if woken {
			_ = ep.SetReadDeadline(time.Time{})
		}
		for _, ev := range events[:n] {
			pl.handle(ev, buf)
		}
		if len(pl.procs) == 0 {
			_ = ep.Close()
			pl.ep, pl.epfd = nil, -1
			pl.mu.Unlock()
			return
		}
		pl.mu.Unlock()
	}
}

// epollWait is epoll_wait that reports an interruption (or any failure:
// the instance is valid while the goroutine runs) as no events.
func epollWait(epfd int, events []unix.EpollEvent, msec int) int {
	n, err := unix.EpollWait(epfd, events, msec)
	if err != nil {
		return 0
	}
	return n
}

// handle acts on one event; pl.mu is held. An event for a process or a
// stream no longer watched (it ended between the wait and now) is
// dropped.
func (pl *poller) handle(ev unix.EpollEvent, buf []byte) {
	data := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
	p := pl.procs[data>>2]
	if p == nil {
		return
	}
	switch data & 3 {
	case evStdout:
		pl.read(p, &p.stdout, nil, buf)
	case evStderr:
		pl.read(p, &p.stderr, p.errTail, buf)
	case evExit:
		if p.pidfd < 0 {
			return
		}
		pl.unwatchExit(p)
		go p.exit(nil)
	}
}

// read reads once from a ready pipe into the log (and tail, if not nil);
// at the pipe's end it ends the stream. pl.mu is held.
func (pl *poller) read(p *Process, pp *pipe, tail *Tail, buf []byte) {
	if !pp.reading {
		return
	}
	n, err := unix.Read(pp.fd, buf)
	switch {
	case n > 0:
		if tail != nil {
			_, _ = tail.Write(buf[:n])
		}
		if werr := pp.lines.Write(buf[:n]); werr != nil && pp.err == nil {
			pp.err = werr
		}
	case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
		// Nothing after all; the pipe is reported again when it has more.
	case err == nil: // EOF: every writer is gone
		pl.end(p, pp)
	default:
		pp.err = errors.Join(pp.err, fmt.Errorf("read %s of %s: %w", pp.stream(p), p.spec.Component, err))
		pl.end(p, pp)
	}
}

// stream names the pipe, for messages.
func (pp *pipe) stream(p *Process) logs.Stream {
	if pp == &p.stderr {
		return logs.Stderr
	}
	return logs.Stdout
}

// end stops reading a pipe: the partial line, if any, goes to the log as
// a line, lost output is reported, and the process's readers are told.
// The descriptor stays open (the process closes it, or hands it over).
// pl.mu is held.
func (pl *poller) end(p *Process, pp *pipe) {
	_ = unix.EpollCtl(pl.epfd, unix.EPOLL_CTL_DEL, pp.fd, nil)
	pp.reading = false
	if err := pp.lines.Flush(); err != nil && pp.err == nil {
		pp.err = err
	}
	if pp.err != nil && !errors.Is(pp.err, logs.ErrClosed) {
		p.r.log.Warn("component output lost", "component", p.spec.Component, "stream", pp.stream(p).String(), "err", pp.err)
	}
	pp.err = nil
	p.readers.Done()
	pl.forgetIfDone(p)
}

// unwatchExit stops waiting for p's exit and closes its pidfd; pl.mu is
// held.
func (pl *poller) unwatchExit(p *Process) {
	_ = unix.EpollCtl(pl.epfd, unix.EPOLL_CTL_DEL, p.pidfd, nil)
	closeFd(p.pidfd)
	p.pidfd = -1
	pl.forgetIfDone(p)
}

// forgetIfDone drops p once nothing of it is watched; pl.mu is held.
func (pl *poller) forgetIfDone(p *Process) {
	if !p.stdout.reading && !p.stderr.reading && p.pidfd < 0 {
		delete(pl.procs, p.pollID)
	}
}

// stopReading ends p's streams still read, as at their end: for output
// still coming after the drain timeout, and for a hand-over, which leaves
// what the process writes from now on in the pipes.
func (pl *poller) stopReading(p *Process) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for _, pp := range []*pipe{&p.stdout, &p.stderr} {
		if pp.reading {
			pl.end(p, pp)
		}
	}
	pl.wakeIfIdle()
}

// release stops everything the poller does for p: for a hand-over, after
// which the next image reads the pipes and waits for the exit.
func (pl *poller) release(p *Process) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for _, pp := range []*pipe{&p.stdout, &p.stderr} {
		if pp.reading {
			pl.end(p, pp)
		}
	}
	if p.pidfd >= 0 {
		pl.unwatchExit(p)
	}
	pl.wakeIfIdle()
}

// closeFd closes fd unless it is -1.
func closeFd(fd int) {
	if fd >= 0 {
		_ = unix.Close(fd)
	}
}

// takeFd returns a descriptor of f's file of the poller's own,
// non-blocking and close-on-exec, and closes f: the poller reads the
// pipe, not the runtime's poller.
func takeFd(f *os.File) (int, error) {
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
