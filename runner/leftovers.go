package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"time"
)

// ErrLiveProcesses says SweepLeftovers was called while processes this
// Runner started still run: it would kill them.
var ErrLiveProcesses = errors.New("runner: processes of this runner are running")

// Leftover is a component group that an earlier agent left with processes
// in it, found and emptied by SweepLeftovers.
type Leftover struct {
	// Component is the group's name, which is the component it ran for.
	Component string
	// CgroupPath is the group, as Process.CgroupPath shows it.
	CgroupPath string
	// Processes are what was found running in it.
	Processes []LeftoverProcess
	// Forced is true when some needed SIGKILL after the timeout.
	Forced bool
}

// LeftoverProcess is one process a sweep found.
type LeftoverProcess struct {
	PID  int
	Name string // the executable's name from /proc/PID/stat
}

// SweepLeftovers stops every process in every group under the runner's
// cgroup root and removes the groups, empty ones too. It is for agent
// start, after StopOrphan has stopped every recorded process and before
// anything is started: each group under the root is a component's by
// construction, so a process still in one was started by an earlier agent
// that died before it could record it (between fork and the store write);
// without the sweep the next start of that component would find its group
// busy (cgroup.ErrBusy) and fail until the leftover is gone.
//
// The processes get opts.Signal, up to opts.Timeout to go (all groups at
// once, so the wait is one timeout, not one per group; a ctx that ends cuts
// it short), then SIGKILL; the shutdown script is not run. It returns the
// groups that held processes, for the caller to report. keep names groups
// (as Process.CgroupPath) to leave alone: those of processes handed over
// by the previous image of this agent (see Adopt). It refuses with
// ErrLiveProcesses while a process this Runner started, not adopted, is
// running. On a host without cgroups there is nothing to find: an
// unrecorded process there is not found.
func (r *Runner) SweepLeftovers(ctx context.Context, opts StopOptions, keep ...string) ([]Leftover, error) {
	if n := r.live.Load() - r.adopted.Load(); n > 0 {
		return nil, fmt.Errorf("sweep leftover cgroups: %w (%d)", ErrLiveProcesses, n)
	}
	opts = opts.withDefaults()
	paths, err := r.cgroups.Groups()
	if err != nil {
		return nil, fmt.Errorf("sweep leftover cgroups: %w", err)
	}
	type found struct {
		t   targets
		lo  Leftover
		fds []pidfd
	}
	var (
		all  []*found
		errs []error
	)
	kept := map[string]bool{}
	for _, k := range keep {
		kept[path.Clean(k)] = true
	}
	for _, gp := range paths {
		if kept[path.Clean(gp)] {
			continue
		}
		g, err := r.cgroups.Open(gp)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f := &found{t: targets{group: g}, lo: Leftover{Component: path.Base(gp), CgroupPath: gp}}
		ms, err := f.t.members()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, m := range ms {
			lp := LeftoverProcess{PID: m.PID}
			if st, err := readStat(m.PID); err == nil {
				lp.Name = st.Comm
			}
			f.lo.Processes = append(f.lo.Processes, lp)
		}
		if len(ms) > 0 {
			if f.fds, err = f.t.signalAll(opts.Signal); err != nil {
				errs = append(errs, err)
			}
		}
		all = append(all, f)
	}

	deadline := time.Now().Add(opts.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if ctx.Err() != nil {
		deadline = time.Now()
	}
	var out []Leftover
	for _, f := range all {
		left, err := waitExited(f.fds, deadline)
		closeAll(f.fds)
		if err != nil {
			errs = append(errs, err)
		}
		killed, err := f.t.killAll(sweepBound)
		if err != nil {
			errs = append(errs, fmt.Errorf("sweep cgroup %s: %w", f.lo.CgroupPath, err))
		}
		f.lo.Forced = len(left) > 0 || killed > 0
		if len(f.lo.Processes) > 0 || killed > 0 {
			out = append(out, f.lo)
		}
		if err == nil {
			if err := f.t.group.Delete(); err != nil {
				errs = append(errs, fmt.Errorf("sweep: %w", err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("sweep leftover cgroups: %w", err)
	}
	return out, nil
}
