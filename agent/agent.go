package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/keystone-edge/keystone/agent/config"
	"github.com/keystone-edge/keystone/comms"
	"github.com/keystone-edge/keystone/ota/sign"
	"github.com/keystone-edge/keystone/runner/cgroup"
	"github.com/keystone-edge/keystone/runner/logs"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/deploy"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// Defaults for the zero values of Options.
const (
	DefaultShutdownTimeout = 2 * time.Minute
	// orphanStopTimeout is how long a process left by a crashed agent gets
	// between the stop signal and SIGKILL.
	orphanStopTimeout = 10 * time.Second
)

// FaultProcessStarted is the point Options.FaultHook is called at between
// a component process starting and its record in the store: a crash there
// leaves a process no record names.
const FaultProcessStarted = "process:started"

// Options are what Run and New take besides the configuration.
type Options struct {
	// Version is the agent's version, for logs and keystone_agent_info.
	// "" = "dev".
	Version string
	// Logger receives the agent's structured logs. nil = JSON lines to
	// Stderr at the configuration's log_level.
	Logger *slog.Logger
	// Stderr is where the default logger writes. nil = os.Stderr.
	Stderr io.Writer
	// ShimPath is the executable the runner re-executes between fork and
	// exec of a component; it must call runner.IsShim/ShimMain first thing.
	// "" = keystone-shim beside this program when it is there, else this
	// program itself (see runner.Config.ShimPath).
	ShimPath string
	// Cgroups says where component cgroups go. The zero value uses the
	// host's cgroups under a root of this data folder's own: /keystone for
	// the default data_dir, /keystone-<hash of data_dir> for another (see
	// docs/operations.md).
	Cgroups cgroup.Config
	// Clock gives time and timers to the supervisor, the engine and the
	// watch folder. nil = the real clock.
	Clock supervisor.Clock
	// FaultHook is for tests, which crash the agent there. The deployment
	// engine calls it right after each checkpoint is durable, with
	// "<step>:<status>" ("stop:started"); the supervisor calls it with
	// FaultProcessStarted right before it records a component process it
	// has started. nil = none.
	FaultHook func(point string)
	// Ready is called once, when the API answers on every address. nil =
	// not called.
	Ready func(Addresses)
	// HandedOver is what the previous image of this process handed over
	// (TakeHandOver): its running components are taken over, not
	// started. nil = nothing.
	HandedOver *HandedOver
	// Reload asks for a re-execution in place (SIGHUP, systemctl reload):
	// the agent hands its components over to the release root_dir/current
	// names (or to its own executable when there is none) and Run returns
	// the *HandOver to exec. nil = never.
	Reload <-chan struct{}
	// ShutdownTimeout bounds the clean shutdown (stopping every component
	// in order); past it what still runs is killed, a step still running
	// is abandoned, and the steps left share ShutdownGrace. 0 =
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// TrimAfter is how long the agent waits, after start-up and after each
	// deployment, with nothing more happening, before it gives back the
	// memory the work used (TrimEnv, trimmer). 0 = never.
	TrimAfter time.Duration
	// PauseIdleGC pauses the garbage collector's periodic run whenever the
	// agent has been quiet for TrimAfter (see trimmer); TuneMemory says
	// whether the environment allows it. false = never paused.
	PauseIdleGC bool
}

// Addresses are where a running agent answers.
type Addresses struct {
	Socket string // the local API's Unix socket
	HTTP   string // host:port of /metrics and /healthz; "" when disabled
}

// Run is the agent: New, Start, Wait and Shutdown in order. It runs until
// ctx ends and returns nil after a clean shutdown. cfg is a loaded
// configuration (config.Load) with overrides applied; Run does not change
// it. A second agent on the same data folder fails at once with a
// *LockedError.
//
// When the agent hands its components over to another image of this
// process (a reload, a self-update), Run returns a *HandOver once
// everything else is shut down; the caller execs it.
func Run(ctx context.Context, cfg *config.Config, opts Options) (err error) {
	a, err := New(ctx, cfg, opts)
	if err != nil {
		return err
	}
	defer func() {
		err = errors.Join(err, a.Shutdown(ctx))
		if h := a.handing; h != nil && a.frozen {
			if err != nil {
				a.log.Warn("shutdown before the hand-over", "err", err)
			}
			err = h
		}
	}()
	if err := a.Start(ctx); err != nil {
		return err
	}
	return a.Wait(ctx)
}

// Agent is one agent over one data folder, in the phases Run goes through
// and tests call one by one: New wires it, Start starts it, Wait runs it
// until the end, Shutdown undoes it all. Its methods are for one goroutine.
type Agent struct {
	cfg   *config.Config
	opts  Options // Version and ShutdownTimeout with their defaults applied
	log   *slog.Logger
	clock supervisor.Clock

	// stack undoes everything started, in reverse order, within the
	// shutdown timeout.
	stack closers
	// fatal receives the failure of a part running in its own goroutine.
	fatal chan error

	store  *store.Store
	logs   *logs.Manager
	bus    *events.Bus
	sup    *supervisor.Supervisor
	engine *deploy.Engine
	// keyring holds trust.keys: recipe signatures and job signatures.
	keyring *sign.Keyring
	comms   *comms.Device // nil in local-only mode
	health  *healthCheck
	api     *apiServer
	watch   *watcher // nil without a watch folder
	addrs   Addresses

	// handOver receives requests to hand the components over to another
	// image of this process; handing is the one Wait took, frozen says
	// the supervisor froze for it.
	handOver chan *HandOver
	handing  *HandOver
	frozen   bool
	// update is the agent's update of itself.
	update *updater
	// releases fetches agent releases from the component repository; nil
	// without one.
	releases releaseSource
	// trimmer gives memory back after work; nil when Options.TrimAfter
	// is 0.
	trimmer *trimmer
}

// New wires an agent on cfg: it locks the data folder, opens the store and
// the component logs, starts recording events, and builds the process
// runner, the supervisor, the metrics, the deployment engine and the API
// server. It starts no component, runs no deployment and listens nowhere;
// Start does. A second agent on the same data folder fails at once with a
// *LockedError. When New fails, what it opened is closed again; when it
// succeeds, the caller must call Shutdown, whatever Start returns.
func New(ctx context.Context, cfg *config.Config, opts Options) (_ *Agent, err error) {
	a := newAgent(cfg, opts)
	defer func() {
		if err != nil {
			err = errors.Join(err, a.Shutdown(ctx))
		}
	}()
	if err := a.openDataDir(ctx); err != nil {
		return nil, err
	}
	rec, err := a.recordEvents(ctx)
	if err != nil {
		return nil, err
	}
	pp, err := a.newSupervisor()
	if err != nil {
		return nil, err
	}
	m, err := a.newMetrics(ctx, pp)
	if err != nil {
		return nil, err
	}
	if a.engine, err = a.newEngine(ctx, retainingSupervisor{a.sup, pp.launcher, a.log}); err != nil {
		return nil, err
	}
	if a.comms, err = a.newComms(a.keyring); err != nil {
		return nil, err
	}
	a.health = &healthCheck{sup: a.sup, store: a.store, now: a.clock.Now}
	a.update = a.newUpdater()
	if err := a.update.load(); err != nil {
		// Never a reason not to start: the agent must stay reachable.
		a.log.Error("self-update record unreadable; set aside", "err", err)
	}
	a.api = &apiServer{
		sup: a.sup, deploys: a.engine, history: rec, logs: a.logs, bus: a.bus, plugins: pp.launcher,
		metrics: m.handler, health: a.health.check, update: a.update, log: a.log.With("part", "api"),
	}
	if cfg.Dev.WatchDir != "" {
		a.watch = &watcher{
			dir: cfg.Dev.WatchDir, stageIn: cfg.DataDir, deploys: a.engine, events: a.bus, clock: a.clock,
			debounce: watchDebounce, log: a.log.With("part", "watch"),
		}
	}
	return a, nil
}

// Start starts the agent New wired, in order: the supervisor (which first
// stops what a crashed agent left: the processes it recorded, then whatever
// else is in the component cgroups), the deployment engine (which restores
// the current set and resumes an unfinished deployment), the MQTT
// connection when agent.toml names a broker, the local API on
// the Unix socket and /metrics and /healthz on http_listen, the watch
// folder and the systemd notifications; then it calls Options.Ready. The
// engine, the watch folder and the watchdog run until ctx ends. Start may
// be called once; whatever it returns, Shutdown undoes what it started.
func (a *Agent) Start(ctx context.Context) error {
	if err := a.sup.Start(ctx); err != nil {
		return err
	}
	if a.update.onTrial() && a.opts.FaultHook != nil {
		a.opts.FaultHook(FaultUpdateRestoring)
	}
	a.stack.push("stop every component", func(ctx context.Context) error {
		if a.handing != nil {
			frozen, err := a.sup.Freeze(ctx)
			if err != nil {
				return err
			}
			a.handing.Components, a.frozen = frozen, true
			a.log.Info("components frozen for the hand-over", "components", len(frozen), "to", a.handing.Target)
			return a.sup.Stop(ctx) // ends the goroutines only
		}
		a.log.Info("stopping components")
		return a.sup.Stop(ctx)
	})
	engCtx, stopEngine := context.WithCancel(ctx)
	a.own("stop the deployment engine", stopEngine, func() {
		if err := a.engine.Run(engCtx); err != nil && engCtx.Err() == nil {
			a.fail(fmt.Errorf("deployment engine: %w", err))
		}
	})
	if a.opts.TrimAfter > 0 {
		var gc *gcPause
		if a.opts.PauseIdleGC {
			gc = &gcPause{}
		}
		a.trimmer = newTrimmer(a.opts.TrimAfter, a.clock, a.log.With("part", "trim"), gc)
		trimCtx, stopTrim := context.WithCancel(ctx)
		sub := a.bus.Subscribe(trimCtx, trimBuffer)
		a.own("stop trimming memory", stopTrim, func() { a.trimmer.run(trimCtx, sub) })
	}
	a.startComms(ctx)
	if err := a.serveAPI(ctx); err != nil {
		return err
	}
	updCtx, stopUpdate := context.WithCancel(context.WithoutCancel(ctx))
	a.stack.push("stop the agent update", func(context.Context) error { stopUpdate(); return nil })
	a.update.boot(updCtx, a.opts.HandedOver)
	if h := a.opts.HandedOver; h != nil {
		go a.reportTakeover(updCtx, h)
	}
	if w := a.watch; w != nil {
		wctx, stopWatch := context.WithCancel(ctx)
		a.own("stop watching the recipe folder", stopWatch, func() {
			if err := w.run(wctx); err != nil {
				a.log.Error("watch folder stopped", "err", err)
				a.bus.Publish(events.Event{Kind: events.KindWarning, Reason: "watch folder stopped: " + err.Error()})
			}
		})
	}
	sd := systemd{log: a.log}
	wdCtx, stopWatchdog := context.WithCancel(ctx)
	a.own("stop the systemd watchdog", func() {
		if a.handing == nil {
			sd.stopping()
		}
		stopWatchdog()
	},
		func() { sd.watchdog(wdCtx, a.health.check) })
	sd.ready()
	a.log.Info("agent ready", "socket", a.addrs.Socket, "http_listen", a.addrs.HTTP)
	if a.opts.Ready != nil {
		a.opts.Ready(a.addrs)
	}
	return nil
}

// Wait runs the started agent until ctx ends, and then returns nil, or
// until a part running on its own fails (the deployment engine, a
// listener), and then returns why. Shutdown comes next either way.
func (a *Agent) Wait(ctx context.Context) error {
	for a.handing == nil {
		select {
		case <-ctx.Done():
			a.log.Info("shutting down", "reason", context.Cause(ctx).Error())
			return nil
		case err := <-a.fatal:
			a.log.Error("shutting down after a failure", "err", err)
			return err
		case <-a.opts.Reload:
			a.handing = a.reload()
		case h := <-a.handOver:
			a.handing = h
		}
	}
	a.log.Info("handing the components over", "to", a.handing.Target, "reason", a.handing.Reason)
	systemd{log: a.log}.reloading()
	return nil
}

// Shutdown undoes what New and Start did, in reverse order: it stops
// accepting requests, stops the engine at a safe point, stops every
// component dependents first, records the last events, closes the store
// and releases the lock. It is bounded by Options.ShutdownTimeout plus
// ShutdownGrace whatever a step does (see closers.close); ctx gives only
// values, its end does not cut the shutdown short. It returns the steps'
// failures joined; a second call does nothing.
func (a *Agent) Shutdown(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.opts.ShutdownTimeout)
	defer cancel()
	return a.stack.close(sctx, a.log)
}

// Addresses are where the agent answers, once Start has returned nil.
func (a *Agent) Addresses() Addresses { return a.addrs }

// own runs fn in a goroutine and pushes the step that calls stop, which
// must make fn return, and waits for it.
func (a *Agent) own(what string, stop, fn func()) {
	done := goOwned(fn)
	a.stack.push(what, func(context.Context) error {
		stop()
		done()
		return nil
	})
}

// fail hands Wait the failure of a part running on its own; past the first
// few, failures are dropped: Wait only needs one.
func (a *Agent) fail(err error) {
	select {
	case a.fatal <- err:
	default:
	}
}

// reload decides what a reload (SIGHUP) re-executes. When root_dir/current
// names the running release (or there is none), this program, in place.
// When it names another one, installed by a package, that release runs on
// trial as an update does (committed when healthy, reverted otherwise);
// its hand-over then comes from the update, and reload returns nil.
func (a *Agent) reload() *HandOver {
	same := &HandOver{Target: a.update.exe, Reason: "reload", dataDir: a.cfg.DataDir}
	version, exe, ok := currentRelease(a.cfg.RootDir)
	if !ok {
		return same
	}
	if version == a.opts.Version {
		same.Target = exe
		return same
	}
	if err := a.update.installed(version, exe); err != nil {
		a.log.Warn("reload refused", "release", version, "err", err)
	}
	return nil
}

// currentRelease is the release rootDir/current names: its version (the
// folder's name under releases/) and its executable.
func currentRelease(rootDir string) (version, exe string, ok bool) {
	if rootDir == "" {
		return "", "", false
	}
	dir, err := filepath.EvalSymlinks(filepath.Join(rootDir, "current"))
	if err != nil {
		return "", "", false
	}
	exe = filepath.Join(dir, "keystone-agent")
	if st, err := os.Stat(exe); err != nil || !st.Mode().IsRegular() {
		return "", "", false
	}
	return filepath.Base(dir), exe, true
}

// reportTakeover logs how long the hand-over took, from the previous
// image's last write before its exec until every component it handed over
// runs again under this one.
func (a *Agent) reportTakeover(ctx context.Context, h *HandedOver) {
	var names []string
	for name, t := range h.Takeover {
		if t.Process != nil {
			names = append(names, name)
		}
	}
	if err := a.sup.WaitReady(ctx, names); err != nil {
		return
	}
	took := time.Since(h.WrittenAt)
	a.log.Info("components taken over", "components", len(names), "took_ms", float64(took.Microseconds())/1000)
}
