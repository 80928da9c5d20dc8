package plugins

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/runner"
	"github.com/keystone-edge/keystone/runner/logs"
	"github.com/keystone-edge/keystone/runner/plugin"
	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// ErrNotScheduled says a plugin is not scheduled now: not deployed, not a
// plugin, or stopped.
var ErrNotScheduled = errors.New("plugins: not scheduled")

// StateStore keeps a plugin's state between runs and agent restarts;
// *store.Store implements it. LoadPluginState wraps store.ErrNotFound
// before the first save.
type StateStore interface {
	LoadPluginState(ctx context.Context, component string) (json.RawMessage, error)
	SavePluginState(ctx context.Context, component string, state json.RawMessage) error
}

// Report is one finished run, for Config.OnRun.
type Report struct {
	Component string
	// Metrics are the mapped series of a good run; nil for a failed one.
	Metrics []plugin.Metric
	// Err is why the run failed; nil for a good run.
	Err error
	// Status is the schedule's status after the run.
	Status Status
}

// Config is what a Launcher needs from the agent.
type Config struct {
	// Runner starts exec plugins; required for them (their launch fails
	// without it).
	Runner *runner.Runner
	// Wasm runs wasm plugins; required for them.
	Wasm *plugin.WasmEngine
	// Exporter serves every plugin's values and run counts; required.
	Exporter *plugin.Exporter
	// State keeps plugin state (plugin.state = true) between runs and
	// across agent restarts; nil keeps it in memory only.
	State StateStore
	// Logs gets a "[keystone]" line in the plugin's log for every failed
	// run; nil = none (failures are still logged by Logger).
	Logs *logs.Manager
	// DeviceID is ctx.device_id.
	DeviceID string
	// DefaultRunAs is agent.toml's default_run_as for exec plugins that name
	// no run_as; "" runs them as the agent.
	DefaultRunAs string
	// AllowRoot is agent.toml's security.allow_root; false = exec plugins
	// that would run as root (uid 0) are refused.
	AllowRoot bool
	// MaxOutput caps a run's stdout; 0 = plugin.DefaultMaxOutput.
	MaxOutput int
	// Events gets a plugin event when a plugin starts failing and when it
	// recovers (not one per run), and the runner's warnings; nil drops them.
	Events events.Publisher
	// OnRun, when set, is called from the schedule after every run (not
	// after a skip); it must not block.
	OnRun func(Report)
	// Clock gives time and timers; nil = supervisor.SystemClock.
	Clock supervisor.Clock
	// Rand returns jitter draws in [0, 1); nil = math/rand/v2.
	Rand func() float64
	// Logger; nil discards.
	Logger *slog.Logger
}

// Launcher launches plugin components (kind = plugin) for the supervisor:
// Launch prepares the plugin (an exec spec, or a compiled module) and
// starts its schedule. It also runs a scheduled plugin at once (RunNow)
// and reports a schedule's Status. It is safe for concurrent use.
type Launcher struct {
	cfg Config

	mu        sync.Mutex
	schedules map[string]*schedule // the live schedule of each plugin
}

// New checks cfg.
func New(cfg Config) (*Launcher, error) {
	if cfg.Exporter == nil {
		return nil, errors.New("plugins: Config.Exporter is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = supervisor.SystemClock{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Events == nil {
		cfg.Events = events.Discard
	}
	return &Launcher{cfg: cfg, schedules: map[string]*schedule{}}, nil
}

// Launch prepares c's plugin and starts its schedule: the first run comes
// within plugin.jitter, then one every plugin.interval. The returned
// Handle has no process; it is Done when Stop ended the schedule. A plugin
// that cannot be prepared (a bad mapping, a module that does not compile
// or fit its memory_limit) fails the launch, so the supervisor reports it;
// a plugin whose runs fail stays scheduled.
func (l *Launcher) Launch(ctx context.Context, c *supervisor.Component) (supervisor.Handle, error) {
	r := c.Recipe
	if r.Metadata.Kind != recipes.KindPlugin || r.Plugin == nil {
		return nil, fmt.Errorf("start %s@%s: not a plugin component", c.Name(), c.Version())
	}
	config := c.Config
	if config == nil {
		config = r.Config.Defaults
	}
	p, err := plugin.New(ctx, plugin.Config{
		Recipe: r, VersionDir: c.VersionDir, WorkDir: c.WorkDir, DeviceID: l.cfg.DeviceID,
		Config: config, Secrets: c.Secrets, DefaultRunAs: l.cfg.DefaultRunAs,
		AllowRoot: l.cfg.AllowRoot,
		Runner:    l.cfg.Runner, Wasm: l.cfg.Wasm, MaxOutput: l.cfg.MaxOutput,
		Warn: func(w runner.Warning) {
			l.cfg.Events.Publish(events.Event{Kind: events.KindWarning, Component: c.Name(), Reason: w.Error()})
		},
		Now: l.cfg.Clock.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("start %s@%s: %w", c.Name(), c.Version(), err)
	}
	interval := r.Plugin.Interval.Duration
	if interval <= 0 {
		interval = plugin.DefaultInterval
	}
	l.cfg.Exporter.Add(c.Name(), interval)
	sl := newSlots(l.cfg.Clock.Now(), interval, r.Plugin.Jitter.Duration, l.cfg.Rand())
	s := newSchedule(ctx, l, c.Name(), p, sl, r.Plugin.State)
	l.mu.Lock()
	l.schedules[c.Name()] = s
	l.mu.Unlock()
	go s.run()
	return s, nil
}

// forget drops s from the live schedules, unless a newer one took its place.
func (l *Launcher) forget(s *schedule) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.schedules[s.name] == s {
		delete(l.schedules, s.name)
	}
}

func (l *Launcher) lookup(name string) (*schedule, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.schedules[name]
	if !ok {
		return nil, fmt.Errorf("plugin %s: %w", name, ErrNotScheduled)
	}
	return s, nil
}

// RunNow runs a scheduled plugin once, as soon as a run in progress has
// finished, and returns its mapped metrics. The run counts like a
// scheduled one (its values are exported, its state kept); a scheduled
// run that comes due meanwhile is skipped. The error wraps ErrNotScheduled,
// a *plugin.RunError when the run failed, or ctx's error.
func (l *Launcher) RunNow(ctx context.Context, name string) ([]plugin.Metric, error) {
	s, err := l.lookup(name)
	if err != nil {
		return nil, err
	}
	return s.runNow(ctx)
}

// Status returns a scheduled plugin's status; the error wraps
// ErrNotScheduled.
func (l *Launcher) Status(name string) (Status, error) {
	s, err := l.lookup(name)
	if err != nil {
		return Status{}, err
	}
	return *s.status.Load(), nil
}

// Retain forgets every plugin the exporter knows that is neither named nor
// scheduled: its values, run counts and textfile go. Call it after a
// deployment is applied, with the components it keeps.
func (l *Launcher) Retain(names []string) error {
	var errs []error
	for _, n := range l.cfg.Exporter.Names() {
		if slices.Contains(names, n) {
			continue
		}
		if _, err := l.lookup(n); err == nil {
			continue
		}
		errs = append(errs, l.cfg.Exporter.Remove(n))
	}
	return errors.Join(errs...)
}

// since is a duration between two clock readings, never negative.
func since(from, to time.Time) time.Duration { return max(to.Sub(from), 0) }
