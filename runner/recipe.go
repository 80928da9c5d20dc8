package runner

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/keystone-edge/keystone/recipes"
)

// RecipeContext is what SpecFromRecipe needs besides the recipe.
type RecipeContext struct {
	// VersionDir is components/<name>/<version>/, where a relative command
	// is found. Required.
	VersionDir string
	// WorkDir is work/<name>/, which working_dir is relative to. Required.
	WorkDir string
	// DefaultRunAs is agent.toml's default_run_as, for a recipe that names
	// no run_as; "" = as the agent.
	DefaultRunAs string
	// AllowRoot is agent.toml's security.allow_root, passed on to the
	// spec; false = Start refuses a process that would run as root.
	AllowRoot bool
	// Secrets are the recipe's [secrets], resolved to values, by
	// environment name; nil = none.
	Secrets map[string]string
}

// SpecFromRecipe builds the ProcessSpec of a rendered (interpolated,
// validated) process recipe. security.allow_root travels in the spec and
// is enforced by Start, where the process is spawned. A seccomp_profile
// left out is "default".
func SpecFromRecipe(r *recipes.Recipe, rc RecipeContext) (ProcessSpec, error) {
	if r == nil || r.Lifecycle.Run == nil {
		return ProcessSpec{}, fmt.Errorf("%w: recipe has no lifecycle.run", ErrInvalidSpec)
	}
	if r.Metadata.Kind != recipes.KindProcess {
		return ProcessSpec{}, fmt.Errorf("%w: %s is a %q component, not a process", ErrInvalidSpec, r.Metadata.Name, r.Metadata.Kind)
	}
	if !filepath.IsAbs(rc.VersionDir) || !filepath.IsAbs(rc.WorkDir) {
		return ProcessSpec{}, errors.New("runner: RecipeContext needs absolute VersionDir and WorkDir")
	}
	run := r.Lifecycle.Run
	spec := ProcessSpec{
		Component:        r.Metadata.Name,
		Version:          r.Metadata.Version,
		Script:           run.Script,
		Args:             slices.Clone(run.Args),
		Secrets:          maps.Clone(rc.Secrets),
		RunAs:            r.Security.RunAs,
		AllowRoot:        rc.AllowRoot,
		NoNewPrivileges:  r.Security.NoNewPrivileges == nil || *r.Security.NoNewPrivileges,
		Seccomp:          r.Security.SeccompProfile,
		CPUQuotaPercent:  r.Resources.CPUQuota,
		MemoryLimitBytes: int64(r.Resources.MemoryLimit),
		PidsLimit:        int64(r.Resources.PidsLimit),
	}
	if run.Command != "" {
		spec.Command = run.Command
		if !filepath.IsAbs(spec.Command) {
			spec.Command = filepath.Join(rc.VersionDir, spec.Command)
		}
	}
	if spec.RunAs == "" {
		spec.RunAs = rc.DefaultRunAs
	}
	if spec.Seccomp == "" {
		spec.Seccomp = SeccompDefault
	}
	if r.Resources.OpenFiles < 0 {
		return ProcessSpec{}, fmt.Errorf("%w: %s: resources.open_files is negative", ErrInvalidSpec, r.Metadata.Name)
	}
	spec.OpenFiles = uint64(r.Resources.OpenFiles)
	spec.Dir = filepath.Join(rc.WorkDir, run.WorkingDir)
	if spec.Dir != filepath.Clean(rc.WorkDir) && !strings.HasPrefix(spec.Dir, filepath.Clean(rc.WorkDir)+"/") {
		return ProcessSpec{}, fmt.Errorf("%w: %s: lifecycle.run.working_dir %q leaves the work folder", ErrInvalidSpec, r.Metadata.Name, run.WorkingDir)
	}
	keys := make([]string, 0, len(run.Env))
	for k := range run.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		spec.Env = append(spec.Env, k+"="+run.Env[k])
	}
	if err := spec.validate(); err != nil {
		return ProcessSpec{}, err
	}
	return spec, nil
}

// StopOptionsFromRecipe reads stop_signal, stop_timeout and the shutdown
// script of a process recipe; unset values keep the StopOptions defaults.
func StopOptionsFromRecipe(r *recipes.Recipe) (StopOptions, error) {
	var o StopOptions
	if r == nil || r.Lifecycle.Run == nil {
		return o, fmt.Errorf("%w: recipe has no lifecycle.run", ErrInvalidSpec)
	}
	run := r.Lifecycle.Run
	if run.StopSignal != "" {
		sig, err := ParseSignal(run.StopSignal)
		if err != nil {
			return o, fmt.Errorf("%w: %s: lifecycle.run.stop_signal: %v", ErrInvalidSpec, r.Metadata.Name, err)
		}
		o.Signal = sig
	}
	o.Timeout = run.StopTimeout.Duration
	if sh := r.Lifecycle.Shutdown; sh != nil {
		o.ShutdownScript, o.ShutdownTimeout = sh.Script, sh.Timeout.Duration
	}
	return o.withDefaults(), nil
}
