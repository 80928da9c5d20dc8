package supervisor

import (
	"context"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/store"
)

// Component is one component as the supervisor runs it: a recipe already
// rendered (interpolation done, configuration merged) and its folders.
type Component struct {
	// Recipe is the rendered recipe; required.
	Recipe *recipes.Recipe
	// VersionDir is components/<name>/<version>/, where the install script
	// runs and a relative command is found; "" means the current folder.
	VersionDir string
	// WorkDir is work/<name>/, the component's writable folder; "" means
	// VersionDir.
	WorkDir string
	// Secrets are the recipe's [secrets] resolved to values, by environment
	// name, for the process and its install script; nil means none. Never
	// logged.
	Secrets map[string]string
	// Config is the effective configuration (recipe defaults < device
	// config < deployment overrides), which a plugin reads as ctx.config;
	// nil means the recipe's defaults.
	Config map[string]any
}

// Name returns the component's name.
func (c *Component) Name() string { return c.Recipe.Metadata.Name }

// Version returns the component's version.
func (c *Component) Version() string { return c.Recipe.Metadata.Version }

// Launcher starts what a component runs. The process runner is one
// implementation; a plugin scheduler (kind = plugin) is meant to be another:
// its Handle is "the schedule", Done when the schedule ends. It knows nothing
// of restart policy, health or dependencies.
type Launcher interface {
	// Launch starts c and returns once it runs (or failed to start).
	Launch(ctx context.Context, c *Component) (Handle, error)
}

// Handle is one running instance of a component.
type Handle interface {
	// Pid is the main process id; 0 when there is no process (a schedule).
	Pid() int
	// Process says how to find the process again after an agent restart
	// (pid, start ticks, process group, cgroup). Component may be left
	// empty; the supervisor fills it in.
	Process() store.Process
	// Done is closed once the instance has ended and Exit is valid.
	Done() <-chan struct{}
	// Exit is how the instance ended; valid once Done is closed.
	Exit() ExitStatus
	// Stop runs the recipe's shutdown script (within its timeout), sends the
	// stop signal, escalates to SIGKILL of the whole process group after the
	// stop timeout, and returns once the instance ended or ctx is done.
	// Stopping an ended instance is not an error.
	Stop(ctx context.Context) error
}

// doneNotifier is a Handle that calls a function when its instance has
// ended (once Done is closed), so that the actor needs no goroutine
// blocked on Done for each component. f must not block.
type doneNotifier interface {
	AfterDone(f func())
}

// RunResult is how one run of an instance that works in runs ended (a
// plugin's schedule): OK, or Detail says why not.
type RunResult struct {
	OK     bool
	Detail string
}

// RunReporter is a Handle whose instance works in runs. Runs delivers the
// latest result, holding at most one not yet received. The component is
// ready after a good run and DEGRADED while its last run failed.
type RunReporter interface {
	Runs() <-chan RunResult
}

// Installer runs a component's install script.
type Installer interface {
	// Install runs the recipe's install script, if any, in the version
	// folder within its timeout. A failure's error carries the tail of the
	// script's stderr.
	Install(ctx context.Context, c *Component) error
}

// Prober runs one health check (a recipe's lifecycle.run.health.check).
type Prober interface {
	// Probe runs check once within ctx and says whether it passed, and what
	// it saw ("HTTP 500", "connection refused").
	Probe(ctx context.Context, c *Component, check string) (healthy bool, detail string)
}

// ProcessRecorder durably records the processes the supervisor started, so a
// restarted agent can find them. *store.Store satisfies it.
type ProcessRecorder interface {
	RecordProcess(ctx context.Context, p store.Process) error
	ClearProcess(ctx context.Context, component string) error
	ListProcesses(ctx context.Context) ([]store.Process, error)
}

// Reaper stops a process recorded by an earlier agent if it is still that
// same process (pid and start ticks match), killing its whole process group
// and cgroup. A process that is gone is not an error.
type Reaper interface {
	Reap(ctx context.Context, p store.Process) error
}

// LeftoverSweeper is a Reaper that can also find what no record names: the
// processes of an earlier agent that died after starting them and before
// recording them. The supervisor calls Sweep at Start, after reaping every
// recorded process and before starting anything.
type LeftoverSweeper interface {
	// Sweep stops every process an earlier agent left that no record
	// names, and says what it found; the cgroups in keep (as
	// runner.Process.CgroupPath) are left alone.
	Sweep(ctx context.Context, keep []string) ([]Leftover, error)
}

// Leftover is a set of processes of one component that a sweep found and
// stopped.
type Leftover struct {
	Component string
	// Where they were found, such as the component's cgroup path.
	Where string
	// Processes are the pids found, each with its program's name.
	Processes []LeftoverProcess
}

// LeftoverProcess is one process a sweep found.
type LeftoverProcess struct {
	PID  int
	Name string
}

// ReaperFunc adapts a function, such as the runner's kill-by-record, to a
// Reaper.
type ReaperFunc func(ctx context.Context, p store.Process) error

// Reap calls f.
func (f ReaperFunc) Reap(ctx context.Context, p store.Process) error { return f(ctx, p) }

// nopRecorder records nothing.
type nopRecorder struct{}

func (nopRecorder) RecordProcess(context.Context, store.Process) error     { return nil }
func (nopRecorder) ClearProcess(context.Context, string) error             { return nil }
func (nopRecorder) ListProcesses(context.Context) ([]store.Process, error) { return nil, nil }
