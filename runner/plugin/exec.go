package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"syscall"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/runner"
)

// execProgram runs an exec plugin as a component process of package
// runner: its own process group and cgroup, the recipe's run_as,
// no_new_privileges, cgroup limits and open_files rlimit, an environment
// of PATH (and HOME, USER, LOGNAME with run_as) only, and its stderr in
// the component's log as well as in the run's error.
type execProgram struct {
	runner *runner.Runner
	spec   runner.ProcessSpec // without stdio
	warn   func(runner.Warning)
}

func newExecProgram(r *recipes.Recipe, command string, cfg Config) (*execProgram, error) {
	if r.Resources.OpenFiles < 0 {
		return nil, errors.New("resources.open_files is negative")
	}
	spec := runner.ProcessSpec{
		Component:        r.Metadata.Name,
		Version:          r.Metadata.Version,
		Command:          command,
		Args:             slices.Clone(r.Plugin.Args),
		Dir:              cfg.WorkDir,
		RunAs:            r.Security.RunAs,
		AllowRoot:        cfg.AllowRoot,
		NoNewPrivileges:  r.Security.NoNewPrivileges == nil || *r.Security.NoNewPrivileges,
		OpenFiles:        uint64(r.Resources.OpenFiles),
		CPUQuotaPercent:  r.Resources.CPUQuota,
		MemoryLimitBytes: int64(r.Resources.MemoryLimit),
		PidsLimit:        int64(r.Resources.PidsLimit),
	}
	if spec.RunAs == "" {
		spec.RunAs = cfg.DefaultRunAs
	}
	return &execProgram{runner: cfg.Runner, spec: spec, warn: cfg.Warn}, nil
}

func (e *execProgram) run(ctx context.Context, stdin []byte, stdout *limitedBuffer, stderr *tailBuffer) error {
	spec := e.spec
	spec.Stdin, spec.Stdout, spec.Stderr = bytes.NewReader(stdin), stdout, stderr
	proc, warnings, err := e.runner.Start(ctx, spec)
	for _, w := range warnings {
		if e.warn != nil {
			e.warn(w)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("%w: %w", ErrStart, err)
	}
	select {
	case <-proc.Done():
	case <-ctx.Done():
		// A timeout, the output cap or a cancel: no grace, the whole
		// group and cgroup are killed at once and reaped.
		now, cancel := context.WithCancel(context.WithoutCancel(ctx))
		cancel()
		proc.Stop(now, runner.StopOptions{Signal: syscall.SIGKILL})
	}
	st := proc.Wait()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if !st.Success() {
		return fmt.Errorf("%w: %s", ErrExit, st.Reason())
	}
	return nil
}

func (e *execProgram) close(context.Context) error { return nil }
