package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"time"
)

// OrphanResult says what StopOrphan found and did.
type OrphanResult struct {
	// Found is true when processes of the record were still running.
	Found bool
	// Processes is how many processes were stopped.
	Processes int
	// Forced is true when some needed SIGKILL after the timeout.
	Forced bool
}

// StopOrphan stops what is left of a process started by an earlier agent
// that died without stopping it, as described by its Record: the recorded
// process if it is still the same one (same pid and start time), its
// process group, and its cgroup. It sends opts.Signal, waits up to
// opts.Timeout, then SIGKILLs what is left and removes the cgroup.
// (opts.ShutdownScript is not run: there is no spec to run it as.)
//
// Nothing that is not provably the component's is touched: a reused pid
// has another start time; a group whose leader is gone is swept only of
// processes that started after the recorded one (the kernel does not reuse
// a pid while a group of that id exists, so such a group is still ours);
// and the cgroup path must lie under the runner's cgroup root. The
// processes are not adopted: see the package documentation.
//
// It returns when everything is gone; a ctx that is done, or whose
// deadline comes first, cuts the grace period short (SIGKILL at once),
// never the wait for the kill.
func (r *Runner) StopOrphan(ctx context.Context, rec Record, opts StopOptions) (OrphanResult, error) {
	opts = opts.withDefaults()
	pgid := rec.PGID
	if pgid <= 0 {
		pgid = rec.PID // the runner starts every process as its group's leader
	}
	t := targets{}
	reap := 0 // the pid to reap after the stop: set when it is our own child
	st, err := readStat(rec.PID)
	switch {
	case err == nil && st.StartTicks == rec.StartTicks:
		t.pgid, t.minTicks = pgid, rec.StartTicks // the leader itself (maybe a zombie): the group is ours
		reap = rec.PID
	case errors.Is(err, ErrNoProcess):
		t.pgid, t.minTicks = pgid, rec.StartTicks // only members started after it can be ours
	case err == nil:
		// The pid is someone else's now, so no group of that id is ours.
	default:
		return OrphanResult{}, fmt.Errorf("stop orphan %s: %w", rec.Component, err)
	}
	if rec.CgroupPath != "" {
		g, err := r.cgroups.Open(rec.CgroupPath)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return OrphanResult{}, fmt.Errorf("stop orphan %s: %w", rec.Component, err)
		default:
			t.group = g
		}
	}
	res, err := t.stop(ctx, opts)
	if reap != 0 {
		// A process handed over by the previous image of this agent is
		// still our child: it must be reaped, or it stays a zombie (and
		// in its cgroup) for as long as the agent runs.
		reapIfChild(reap)
	}
	if err != nil {
		return res, fmt.Errorf("stop orphan %s: %w", rec.Component, err)
	}
	if t.group != nil {
		if err := t.group.Delete(); err != nil {
			return res, fmt.Errorf("stop orphan %s: %w", rec.Component, err)
		}
	}
	return res, nil
}

// stop signals every member, gives them opts.Timeout, then kills the rest.
func (t targets) stop(ctx context.Context, opts StopOptions) (OrphanResult, error) {
	var res OrphanResult
	if t.pgid == 0 && t.group == nil {
		return res, nil
	}
	fds, err := t.signalAll(opts.Signal)
	if err != nil {
		return res, err
	}
	res.Found, res.Processes = len(fds) > 0, len(fds)
	deadline := time.Now().Add(opts.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if ctx.Err() != nil {
		deadline = time.Now()
	}
	left, err := waitExited(fds, deadline)
	closeAll(fds)
	if err != nil {
		return res, err
	}
	killed, err := t.killAll(sweepBound)
	res.Forced = len(left) > 0 || killed > 0
	if killed > len(left) {
		res.Found = true
		res.Processes += killed - len(left)
	}
	return res, err
}

// reapIfChild collects the exit of pid if it is an ended child of this
// process; anything else is left alone.
func reapIfChild(pid int) {
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
}
