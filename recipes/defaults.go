package recipes

import "time"

// Defaults the parser fills in for fields a file leaves out. A field written
// explicitly keeps its value even when it is zero ("0s" is a valid restart
// backoff), so defaults are decided by presence in the merged file, not by
// the decoded value.
const (
	DefaultRestartPolicy           = RestartOnFailure
	DefaultRestartInitial          = time.Second
	DefaultRestartMax              = 5 * time.Minute
	DefaultMaxRestarts             = 5
	DefaultMaxRestartsWindow       = 10 * time.Minute
	DefaultBrokenRetry             = 30 * time.Minute
	DefaultStopSignal              = "SIGTERM"
	DefaultStopTimeout             = 10 * time.Second
	DefaultWorkingDir              = "."
	DefaultInstallTimeout          = 2 * time.Minute
	DefaultShutdownTimeout         = 10 * time.Second
	DefaultHealthInterval          = 10 * time.Second
	DefaultHealthTimeout           = 3 * time.Second
	DefaultHealthThreshold         = 3
	DefaultDependencyType          = DependencyHard
	DefaultPluginRuntime           = "exec"
	DefaultPluginInterval          = 30 * time.Second
	DefaultPluginTimeout           = 5 * time.Second
	DefaultFailurePolicy           = FailureRollback
	DefaultDeploymentHealthTimeout = 60 * time.Second
)

// applyRecipeDefaults fills in what tree (the merged file) leaves out.
func applyRecipeDefaults(r *Recipe, tree map[string]any) {
	setDur := func(d *Duration, v time.Duration, keys ...any) {
		if !present(tree, keys...) {
			d.Duration = v
		}
	}
	if s := r.Lifecycle.Install; s != nil {
		setDur(&s.Timeout, DefaultInstallTimeout, "lifecycle", "install", "timeout")
	}
	if s := r.Lifecycle.Shutdown; s != nil {
		setDur(&s.Timeout, DefaultShutdownTimeout, "lifecycle", "shutdown", "timeout")
	}
	if run := r.Lifecycle.Run; run != nil {
		at := func(k ...any) []any { return append([]any{"lifecycle", "run"}, k...) }
		if !present(tree, at("working_dir")...) {
			run.WorkingDir = DefaultWorkingDir
		}
		if !present(tree, at("restart_policy")...) {
			run.RestartPolicy = DefaultRestartPolicy
		}
		setDur(&run.RestartBackoff.Initial, DefaultRestartInitial, at("restart_backoff", "initial")...)
		setDur(&run.RestartBackoff.Max, DefaultRestartMax, at("restart_backoff", "max")...)
		if !present(tree, at("max_restarts", "count")...) {
			run.MaxRestarts.Count = DefaultMaxRestarts
		}
		setDur(&run.MaxRestarts.Window, DefaultMaxRestartsWindow, at("max_restarts", "window")...)
		setDur(&run.BrokenRetry, DefaultBrokenRetry, at("broken_retry")...)
		if !present(tree, at("stop_signal")...) {
			run.StopSignal = DefaultStopSignal
		}
		setDur(&run.StopTimeout, DefaultStopTimeout, at("stop_timeout")...)
		if h := run.Health; h != nil {
			setDur(&h.Interval, DefaultHealthInterval, at("health", "interval")...)
			setDur(&h.Timeout, DefaultHealthTimeout, at("health", "timeout")...)
			if !present(tree, at("health", "failure_threshold")...) {
				h.FailureThreshold = DefaultHealthThreshold
			}
		}
	}
	if p := r.Plugin; p != nil {
		if !present(tree, "plugin", "runtime") {
			p.Runtime = DefaultPluginRuntime
		}
		setDur(&p.Interval, DefaultPluginInterval, "plugin", "interval")
		setDur(&p.Timeout, DefaultPluginTimeout, "plugin", "timeout")
	}
	for i := range r.Dependencies {
		if !present(tree, "dependencies", i, "type") {
			r.Dependencies[i].Type = DefaultDependencyType
		}
	}
}

// applyManifestDefaults fills in what tree (the manifest file) leaves out.
func applyManifestDefaults(m *Manifest, tree map[string]any) {
	if !present(tree, "deployment", "failure_policy") {
		m.Deployment.FailurePolicy = DefaultFailurePolicy
	}
	if !present(tree, "deployment", "health_timeout") {
		m.Deployment.HealthTimeout.Duration = DefaultDeploymentHealthTimeout
	}
}
