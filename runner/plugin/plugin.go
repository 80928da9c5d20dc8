package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"time"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/runner"
)

// Runtimes of [plugin] runtime.
const (
	RuntimeExec = "exec" // a child process through package runner
	RuntimeWasm = "wasm" // a WASI preview 1 module in wazero
)

// Defaults for a recipe that leaves them zero (the recipe parser applies
// the same ones).
const (
	DefaultInterval = 30 * time.Second
	DefaultTimeout  = 5 * time.Second
)

// Config is what New needs to make a runnable plugin of a component.
type Config struct {
	// Recipe is the rendered (interpolated) recipe of a kind = plugin
	// component; required.
	Recipe *recipes.Recipe
	// VersionDir is components/<name>/<version>/, where a relative
	// command (or module) is found; absolute, required.
	VersionDir string
	// WorkDir is work/<name>/, an exec plugin's working directory;
	// absolute; "" = VersionDir.
	WorkDir string
	// DeviceID is ctx.device_id.
	DeviceID string
	// Config is ctx.config, the component's effective configuration; nil
	// = the recipe's config defaults.
	Config map[string]any
	// Secrets are ctx.secrets, the resolved [secrets]; nil = none. They go
	// into the context document only, never an environment or a log.
	Secrets map[string]string
	// DefaultRunAs is agent.toml's default_run_as, for an exec plugin
	// whose recipe names no run_as; "" = as the agent.
	DefaultRunAs string
	// AllowRoot is agent.toml's security.allow_root; false = an exec
	// plugin that would run as root (uid 0) is refused at every run.
	AllowRoot bool
	// Runner starts exec plugins; required for runtime = "exec".
	Runner *runner.Runner
	// Wasm compiles and runs wasm plugins; required for runtime = "wasm".
	Wasm *WasmEngine
	// MaxOutput caps a run's stdout in bytes; 0 = DefaultMaxOutput.
	MaxOutput int
	// Warn receives limits the host cannot enforce for an exec plugin
	// (each once per component and value); nil drops them.
	Warn func(runner.Warning)
	// Now reads the clock for run durations; nil = time.Now.
	Now func() time.Time
}

// Plugin is one plugin component ready to run: its program (a confined
// process spec, or a compiled module), its mapping and its context. Runs
// may not overlap (the scheduler guarantees it); Close releases it.
type Plugin struct {
	name, version string
	deviceID      string
	config        map[string]any
	secrets       map[string]string
	timeout       time.Duration
	maxOutput     int
	mapping       *Mapping
	prog          program
	now           func() time.Time
}

// program runs a plugin's code once: stdin in, stdout and stderr out,
// stopped when ctx ends (then it returns context.Cause(ctx)).
type program interface {
	run(ctx context.Context, stdin []byte, stdout *limitedBuffer, stderr *tailBuffer) error
	close(ctx context.Context) error
}

// Result is a good run.
type Result struct {
	// Metrics are the mapped series, in the order the plugin printed them.
	Metrics []Metric
	// State is what to hand to the next run (JSON; "null" clears it);
	// valid only when HasState (see Output).
	State    json.RawMessage
	HasState bool
	// Duration is how long the run took.
	Duration time.Duration
	// Stderr is the tail of what the program printed on stderr.
	Stderr string
}

// New checks the recipe's [plugin] and prepares its program: an exec
// plugin's process spec, or a wasm plugin's module, read and compiled once
// here (the error wraps ErrStart when it cannot be).
func New(ctx context.Context, cfg Config) (*Plugin, error) {
	r := cfg.Recipe
	if r == nil || r.Plugin == nil {
		return nil, errors.New("plugin: recipe has no [plugin]")
	}
	name := r.Metadata.Name
	if r.Metadata.Kind != recipes.KindPlugin {
		return nil, fmt.Errorf("plugin %s: is a %q component, not a plugin", name, r.Metadata.Kind)
	}
	if !filepath.IsAbs(cfg.VersionDir) || (cfg.WorkDir != "" && !filepath.IsAbs(cfg.WorkDir)) {
		return nil, fmt.Errorf("plugin %s: VersionDir and WorkDir must be absolute", name)
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = cfg.VersionDir
	}
	mapping, err := NewMapping(r.Plugin.Mapping)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", name, err)
	}
	p := &Plugin{
		name: name, version: r.Metadata.Version, deviceID: cfg.DeviceID,
		config: cfg.Config, secrets: maps.Clone(cfg.Secrets),
		timeout: r.Plugin.Timeout.Duration, maxOutput: cfg.MaxOutput, mapping: mapping, now: cfg.Now,
	}
	if p.config == nil {
		p.config = r.Config.Defaults
	}
	if p.timeout <= 0 {
		p.timeout = DefaultTimeout
	}
	if p.maxOutput <= 0 {
		p.maxOutput = DefaultMaxOutput
	}
	if p.now == nil {
		p.now = time.Now
	}
	command := r.Plugin.Command
	if command == "" {
		return nil, fmt.Errorf("plugin %s: plugin.command is required", name)
	}
	if !filepath.IsAbs(command) {
		command = filepath.Join(cfg.VersionDir, command)
	}
	switch rt := r.Plugin.Runtime; rt {
	case RuntimeExec, "":
		if cfg.Runner == nil {
			return nil, fmt.Errorf("plugin %s: no runner for exec plugins", name)
		}
		p.prog, err = newExecProgram(r, command, cfg)
	case RuntimeWasm:
		if cfg.Wasm == nil {
			return nil, fmt.Errorf("plugin %s: no wasm engine", name)
		}
		fsRead := make([]string, len(r.Plugin.FSRead))
		for i, f := range r.Plugin.FSRead {
			if !filepath.IsAbs(f) {
				f = filepath.Join(cfg.VersionDir, f) // relative: in the version folder
			}
			fsRead[i] = f
		}
		p.prog, err = cfg.Wasm.load(ctx, command, r.Plugin.Args, fsRead, int64(r.Plugin.MemoryLimit))
	default:
		return nil, fmt.Errorf("plugin %s: plugin.runtime %q is not exec or wasm", name, rt)
	}
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", name, err)
	}
	return p, nil
}

// Name is the component's name.
func (p *Plugin) Name() string { return p.name }

// Mapping is the plugin's mapping.
func (p *Plugin) Mapping() *Mapping { return p.mapping }

// Close releases the program (a wasm module's compiled code). The Plugin
// must not be run afterwards.
func (p *Plugin) Close(ctx context.Context) error { return p.prog.close(ctx) }

// Run runs the plugin once with state as ctx.state (nil = null): it sends
// the context document, waits for the program within the plugin's timeout
// (stopping it when the timeout passes, or the output cap is passed, or ctx
// ends), then validates and maps the output. Any failure fails the whole
// run: the error is a *RunError wrapping ErrTimeout, ErrExit,
// ErrOutputTooLarge, ErrInvalidOutput or ErrStart, and nothing of the
// output is returned. When ctx ends first the error wraps ctx's error
// instead (the run was cancelled; the plugin did not fail).
func (p *Plugin) Run(ctx context.Context, state json.RawMessage) (*Result, error) {
	doc, err := Context{
		Component: p.name, Version: p.version, DeviceID: p.deviceID,
		Config: p.config, State: state, Secrets: p.secrets,
	}.MarshalJSON()
	if err != nil {
		return nil, &RunError{Component: p.name, Err: fmt.Errorf("%w: %v", ErrStart, err)}
	}
	runCtx, cancel := context.WithTimeoutCause(ctx, p.timeout, ErrTimeout)
	defer cancel()
	runCtx, stop := context.WithCancelCause(runCtx)
	defer stop(nil)
	stdout := &limitedBuffer{max: p.maxOutput, over: func() { stop(ErrOutputTooLarge) }}
	stderr := &tailBuffer{keep: stderrKeep}

	start := p.now()
	runErr := p.prog.run(runCtx, doc, stdout, stderr)
	took := p.now().Sub(start)
	data, tooLarge := stdout.result()
	fail := func(err error) (*Result, error) {
		return nil, &RunError{Component: p.name, Err: err, Stderr: stderr.String()}
	}
	switch {
	case tooLarge:
		return fail(fmt.Errorf("%w: printed more than %d bytes on stdout", ErrOutputTooLarge, p.maxOutput))
	case ctx.Err() != nil:
		return nil, fmt.Errorf("plugin %s: run cancelled: %w", p.name, ctx.Err())
	case errors.Is(context.Cause(runCtx), ErrTimeout):
		return fail(fmt.Errorf("%w after %s", ErrTimeout, p.timeout))
	case runErr != nil:
		return fail(runErr)
	}
	out, err := ParseOutput(data)
	if err != nil {
		return fail(err)
	}
	metrics, err := p.mapping.Apply(out.Metrics)
	if err != nil {
		return fail(err)
	}
	return &Result{
		Metrics: metrics, State: out.State, HasState: out.HasState,
		Duration: took, Stderr: stderr.String(),
	}, nil
}
