package supervisor

import (
	"context"
	"fmt"
	"time"

	"github.com/keystone-edge/keystone/runner"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// ProcessLauncher launches process components (kind = process) through
// the runner: the rendered recipe becomes a runner.ProcessSpec, and the
// runner's warnings (limits the host cannot enforce) become events.
type ProcessLauncher struct {
	// Runner starts the processes; required.
	Runner *runner.Runner
	// DefaultRunAs is agent.toml's default_run_as, for recipes that name no
	// run_as; "" runs them as the agent.
	DefaultRunAs string
	// AllowRoot is agent.toml's security.allow_root; false = the runner
	// refuses a process that would run as root (uid 0), "" run_as with a
	// root agent included.
	AllowRoot bool
	// Events receives the runner's warnings; nil drops them.
	Events events.Publisher
}

// Launch starts c's process. Component.VersionDir and WorkDir must be
// absolute.
func (l *ProcessLauncher) Launch(ctx context.Context, c *Component) (Handle, error) {
	spec, err := runner.SpecFromRecipe(c.Recipe, runner.RecipeContext{
		VersionDir: c.VersionDir, WorkDir: c.WorkDir, DefaultRunAs: l.DefaultRunAs,
		AllowRoot: l.AllowRoot, Secrets: c.Secrets,
	})
	if err != nil {
		return nil, fmt.Errorf("start %s@%s: %w", c.Name(), c.Version(), err)
	}
	stop, err := runner.StopOptionsFromRecipe(c.Recipe)
	if err != nil {
		return nil, fmt.Errorf("start %s@%s: %w", c.Name(), c.Version(), err)
	}
	p, warnings, err := l.Runner.Start(ctx, spec)
	for _, w := range warnings {
		if l.Events != nil {
			l.Events.Publish(events.Event{Kind: events.KindWarning, Component: c.Name(), Reason: w.Error()})
		}
	}
	if err != nil {
		return nil, err // the runner's errors already begin "start <name>: "
	}
	return &processHandle{p: p, stop: stop}, nil
}

// Adopt takes over c's process handed over by the previous image of the
// agent process (see Supervisor.Freeze).
func (l *ProcessLauncher) Adopt(ctx context.Context, c *Component, h runner.HandOver) (Handle, error) {
	spec, err := runner.SpecFromRecipe(c.Recipe, runner.RecipeContext{
		VersionDir: c.VersionDir, WorkDir: c.WorkDir, DefaultRunAs: l.DefaultRunAs,
		AllowRoot: l.AllowRoot, Secrets: c.Secrets,
	})
	if err != nil {
		return nil, fmt.Errorf("adopt %s@%s: %w", c.Name(), c.Version(), err)
	}
	stop, err := runner.StopOptionsFromRecipe(c.Recipe)
	if err != nil {
		return nil, fmt.Errorf("adopt %s@%s: %w", c.Name(), c.Version(), err)
	}
	p, err := l.Runner.Adopt(spec, h)
	if err != nil {
		return nil, err
	}
	return &processHandle{p: p, stop: stop}, nil
}

// processHandle adapts a *runner.Process to a Handle.
type processHandle struct {
	p    *runner.Process
	stop runner.StopOptions
}

func (h *processHandle) Pid() int              { return h.p.Pid() }
func (h *processHandle) Done() <-chan struct{} { return h.p.Done() }
func (h *processHandle) AfterDone(f func())    { h.p.AfterDone(f) }

func (h *processHandle) Process() store.Process {
	return store.Process{PID: h.p.Pid(), StartTicks: h.p.StartTicks(), PGID: h.p.Pgid(), CgroupPath: h.p.CgroupPath()}
}

func (h *processHandle) HandOver() (runner.HandOver, error) { return h.p.HandOver() }

func (h *processHandle) Exit() ExitStatus {
	st := h.p.Wait()
	return ExitStatus{Code: st.Code, Signal: st.Signal, OOM: st.OOMKilled, Err: st.Err, Stderr: st.StderrTail}
}

func (h *processHandle) Stop(ctx context.Context) error {
	h.p.Stop(ctx, h.stop)
	return nil
}

// OrphanReaper is the Reaper of processes left by an earlier agent: the
// runner's StopOrphan (same pid and start ticks, then the process group
// and the cgroup), with stopTimeout between the stop signal and SIGKILL
// (0 means the runner's default). It is also a LeftoverSweeper: the
// runner's SweepLeftovers empties every group left under its cgroup root,
// which finds the processes an agent started but died before recording.
func OrphanReaper(r *runner.Runner, stopTimeout time.Duration) Reaper {
	return orphanReaper{r: r, opts: runner.StopOptions{Timeout: stopTimeout}}
}

type orphanReaper struct {
	r    *runner.Runner
	opts runner.StopOptions
}

func (o orphanReaper) Reap(ctx context.Context, p store.Process) error {
	_, err := o.r.StopOrphan(ctx, runner.Record{
		Component: p.Component, PID: p.PID, StartTicks: p.StartTicks, PGID: p.PGID, CgroupPath: p.CgroupPath,
	}, o.opts)
	return err
}

func (o orphanReaper) Sweep(ctx context.Context, keep []string) ([]Leftover, error) {
	found, err := o.r.SweepLeftovers(ctx, o.opts, keep...)
	out := make([]Leftover, 0, len(found))
	for _, f := range found {
		lo := Leftover{Component: f.Component, Where: "cgroup " + f.CgroupPath}
		for _, p := range f.Processes {
			lo.Processes = append(lo.Processes, LeftoverProcess{PID: p.PID, Name: p.Name})
		}
		out = append(out, lo)
	}
	return out, err
}
