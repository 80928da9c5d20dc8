package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/keystone-edge/keystone/agent/config"
	"github.com/keystone-edge/keystone/ota"
	"github.com/keystone-edge/keystone/ota/sign"
	"github.com/keystone-edge/keystone/runner"
	"github.com/keystone-edge/keystone/runner/cgroup"
	"github.com/keystone-edge/keystone/runner/logs"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/deploy"
	"github.com/keystone-edge/keystone/supervisor/events"
	"github.com/keystone-edge/keystone/supervisor/plugins"
)

// Defaults for the zero values of Options.
const (
	DefaultShutdownTimeout = 2 * time.Minute
	// orphanStopTimeout is how long a process left by a crashed agent gets
	// between the stop signal and SIGKILL.
	orphanStopTimeout = 10 * time.Second
)

// Options are what Run takes besides the configuration.
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
	// FaultHook is called by the deployment engine right after each
	// checkpoint is durable, with "<step>:<status>" ("stop:started"); tests
	// crash the agent there. nil = none.
	FaultHook func(step string)
	// Ready is called once, when the API answers on every address. nil =
	// not called.
	Ready func(Addresses)
	// ShutdownTimeout bounds the clean shutdown (stopping every component
	// in order); past it what still runs is killed, a step still running
	// is abandoned, and the steps left share ShutdownGrace. 0 =
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
}

// Addresses are where a running agent answers.
type Addresses struct {
	Socket string // the local API's Unix socket
	HTTP   string // host:port of /metrics and /healthz; "" when disabled
}

// Run is the agent: it starts everything in order — lock the data folder,
// open the store, start the supervisor (stopping what a crashed agent left
// running), start the deployment engine (restoring the current set and
// resuming an unfinished deployment), serve the local API on the Unix
// socket and /metrics and /healthz on http_listen, apply the watch folder,
// tell systemd it is ready — and runs until ctx ends. Then it shuts down in
// reverse: it stops accepting requests, stops the engine at a safe point,
// stops every component dependents first, records the last events and
// closes the store. It returns nil after a clean shutdown.
//
// cfg is a loaded configuration (config.Load) with overrides applied; Run
// does not change it. A second agent on the same data folder fails at once
// with a *LockedError.
func Run(ctx context.Context, cfg *config.Config, opts Options) (err error) {
	log := opts.Logger
	if log == nil {
		w := opts.Stderr
		if w == nil {
			w = os.Stderr
		}
		log = slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: cfg.SlogLevel()}))
	}
	clock := opts.Clock
	if clock == nil {
		clock = supervisor.SystemClock{}
	}
	version := opts.Version
	if version == "" {
		version = "dev"
	}
	shutdownTimeout := opts.ShutdownTimeout
	if shutdownTimeout <= 0 {
		shutdownTimeout = DefaultShutdownTimeout
	}

	// Everything started is undone in reverse order by stack, on the way
	// out, within the shutdown timeout.
	var stack closers
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		err = errors.Join(err, stack.close(sctx, log))
	}()

	paths := cfg.DataPaths()
	if err := makeDataDirs(paths); err != nil {
		return err
	}
	lock, err := lockDataDir(paths.Dir)
	if err != nil {
		return err
	}
	stack.push("release the data folder lock", func(context.Context) error { return lock.release() })
	log.Info("agent starting", "version", version, "device_id", cfg.DeviceID,
		"config", cfg.Source, "data_dir", paths.Dir, "pid", os.Getpid())

	st, err := store.Open(ctx, paths.DB, store.WithLogger(log), store.WithClock(clock.Now))
	if err != nil {
		return fmt.Errorf("open store %s: %w", paths.DB, err)
	}
	stack.push("close the store", func(context.Context) error { return st.Close() })

	logMgr, err := logs.Open(logs.Config{Dir: paths.Logs, Now: clock.Now})
	if err != nil {
		return fmt.Errorf("open component logs %s: %w", paths.Logs, err)
	}
	stack.push("close the component logs", func(context.Context) error { return logMgr.Close() })

	// The bus and its recorders come first, so that nothing published from
	// here on is lost; they are stopped last (after the components), so
	// that the shutdown transitions are recorded too.
	bus := events.New(clock.Now)
	rec, err := newRecorder(ctx, st, log)
	if err != nil {
		return err
	}
	recCtx, stopRec := context.WithCancel(context.WithoutCancel(ctx))
	recSub := bus.Subscribe(recCtx, recorderBuffer)
	recDone := goOwned(func() { rec.run(recCtx, recSub) })
	stack.push("stop recording events", func(context.Context) error {
		stopRec()
		recDone()
		return nil
	})
	warnWeakTrust(cfg, log, bus)

	cgroups := cgroupsFor(opts.Cgroups, paths.Dir)
	run, err := runner.New(runner.Config{ShimPath: opts.ShimPath, Logs: logMgr, Cgroups: cgroups, Logger: log})
	if err != nil {
		return fmt.Errorf("process runner: %w", err)
	}
	log.Info("component cgroups", "mode", run.CgroupMode().String(), "root", cgroups.Root)
	stack.push("remove the empty cgroup root", func(context.Context) error {
		pruneCgroupRoot(cgroups, log)
		return nil
	})
	pp, err := newPluginParts(cfg, run, st, logMgr, bus, clock, log.With("part", "plugins"))
	if err != nil {
		return err
	}
	stack.push("release the WASM engine", func(ctx context.Context) error { return pp.wasm.Close(ctx) })
	sup, err := supervisor.New(supervisor.Config{
		Launcher: plugins.Dispatcher{
			Process: &supervisor.ProcessLauncher{Runner: run, DefaultRunAs: cfg.DefaultRunAs,
				AllowRoot: cfg.Security.AllowRoot, Events: bus},
			Plugins: pp.launcher,
		},
		Recorder: st,
		Reaper:   supervisor.OrphanReaper(run, orphanStopTimeout),
		Sampler:  supervisor.NewProcSampler(sampleInterval),
		Events:   bus,
		Clock:    clock,
		Shell:    supervisor.ShellUser{DefaultRunAs: cfg.DefaultRunAs, AllowRoot: cfg.Security.AllowRoot},
		Logger:   log.With("part", "supervisor"),
	})
	if err != nil {
		return fmt.Errorf("supervisor: %w", err)
	}

	metricsCtx, stopMetrics := context.WithCancel(context.WithoutCancel(ctx))
	m, err := newMetrics(metricsConfig{
		Context:       metricsCtx,
		Version:       version,
		Components:    sup,
		CPUSeconds:    processCPUSeconds,
		OutboxPending: st.OutboxLen,
		CacheBytes:    func(ctx context.Context) (int64, error) { return cacheBytes(ctx, st) },
		Logger:        log,
		Plugins:       pp.exporter,
	})
	if err != nil {
		stopMetrics()
		return err
	}
	metricsSub := bus.Subscribe(metricsCtx, recorderBuffer)
	metricsDone := goOwned(func() { m.count(metricsSub) })
	stack.push("stop counting deployments", func(context.Context) error {
		stopMetrics()
		metricsDone()
		return nil
	})

	// Start stops what a crashed agent left: the processes it recorded,
	// then whatever else is in the component cgroups.
	if err := sup.Start(ctx); err != nil {
		return err
	}
	stack.push("stop every component", func(ctx context.Context) error {
		log.Info("stopping components")
		return sup.Stop(ctx)
	})

	engine, err := newEngine(ctx, cfg, st, retainingSupervisor{sup, pp.launcher, log}, bus, clock, opts.FaultHook, log)
	if err != nil {
		return err
	}
	fatal := make(chan error, 4)
	engCtx, stopEngine := context.WithCancel(ctx)
	engDone := goOwned(func() {
		if err := engine.Run(engCtx); err != nil && engCtx.Err() == nil {
			select {
			case fatal <- fmt.Errorf("deployment engine: %w", err):
			default:
			}
		}
	})
	stack.push("stop the deployment engine", func(context.Context) error {
		stopEngine()
		engDone()
		return nil
	})

	health := &healthCheck{sup: sup, store: st, now: clock.Now}
	streamsCtx, closeStreams := context.WithCancel(context.WithoutCancel(ctx))
	srv := &apiServer{
		sup: sup, deploys: engine, history: rec, logs: logMgr, bus: bus, plugins: pp.launcher,
		metrics: m.handler, health: health.check, streams: streamsCtx,
		log: log.With("part", "api"),
	}
	addrs := Addresses{Socket: cfg.API.Socket}
	sock, err := listenSocket(ctx, cfg.API.Socket, cfg.API.SocketGroup)
	if err != nil {
		closeStreams()
		return err
	}
	stack.push("remove the API socket", func(context.Context) error {
		if err := os.Remove(cfg.API.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	})
	serve(&stack, "local API", newHTTPServer(srv.socketHandler(), log, context.WithoutCancel(ctx)), sock, closeStreams, fatal)
	if cfg.API.HTTPListen != "" {
		var lc net.ListenConfig
		tcp, err := lc.Listen(ctx, "tcp", cfg.API.HTTPListen)
		if err != nil {
			return fmt.Errorf("http_listen %s: %w", cfg.API.HTTPListen, err)
		}
		addrs.HTTP = tcp.Addr().String()
		serve(&stack, "metrics listener", newHTTPServer(srv.tcpHandler(), log, context.WithoutCancel(ctx)), tcp, closeStreams, fatal)
	}

	if cfg.Dev.WatchDir != "" {
		w := &watcher{
			dir: cfg.Dev.WatchDir, stageIn: paths.Dir, deploys: engine, events: bus, clock: clock,
			debounce: watchDebounce, log: log.With("part", "watch"),
		}
		wctx, stopWatch := context.WithCancel(ctx)
		watchDone := goOwned(func() {
			if err := w.run(wctx); err != nil {
				log.Error("watch folder stopped", "err", err)
				bus.Publish(events.Event{Kind: events.KindWarning, Reason: "watch folder stopped: " + err.Error()})
			}
		})
		stack.push("stop watching the recipe folder", func(context.Context) error {
			stopWatch()
			watchDone()
			return nil
		})
	}

	sd := systemd{log: log}
	wdCtx, stopWatchdog := context.WithCancel(ctx)
	wdDone := goOwned(func() { sd.watchdog(wdCtx, health.check) })
	stack.push("stop the systemd watchdog", func(context.Context) error {
		sd.stopping()
		stopWatchdog()
		wdDone()
		return nil
	})
	sd.ready()
	log.Info("agent ready", "socket", addrs.Socket, "http_listen", addrs.HTTP)
	if opts.Ready != nil {
		opts.Ready(addrs)
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", context.Cause(ctx).Error())
		return nil
	case err := <-fatal:
		log.Error("shutting down after a failure", "err", err)
		return err
	}
}

// serve runs srv on l in its own goroutine until the agent shuts down;
// Serve failing for any other reason is fatal.
func serve(stack *closers, name string, srv *http.Server, l net.Listener, closeStreams func(), fatal chan<- error) {
	done := goOwned(func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			select {
			case fatal <- fmt.Errorf("%s: %w", name, err):
			default:
			}
		}
	})
	stack.push("stop the "+name, func(ctx context.Context) error {
		closeStreams() // followers have no end of their own
		err := srv.Shutdown(ctx)
		done()
		return err
	})
}

// newEngine builds the deployment engine and what it needs: the artifact
// fetcher, the component repository (when configured) and the keyring.
func newEngine(ctx context.Context, cfg *config.Config, st *store.Store, sup deploy.Supervisor,
	bus *events.Bus, clock supervisor.Clock, fault func(string), log *slog.Logger) (*deploy.Engine, error) {
	fetcher, repo, err := ota.New(ctx, ota.Config{
		DataDir:       cfg.DataDir,
		Index:         st,
		CacheLimit:    int64(cfg.Artifacts.CacheLimit),
		AllowHTTP:     cfg.Artifacts.AllowHTTP,
		CAFile:        cfg.Artifacts.CAFile,
		TUFRoot:       cfg.Trust.TUFRoot,
		RepositoryURL: cfg.Trust.Repository,
		Unpack: ota.UnpackLimits{
			MaxBytes: int64(cfg.Artifacts.MaxUnpackedSize),
			MaxFiles: cfg.Artifacts.MaxEntries,
		},
		Logger: log.With("part", "ota"),
	})
	if err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	keyring, err := sign.LoadKeyring(cfg.Trust.Keys...)
	if err != nil {
		return nil, fmt.Errorf("trust keys: %w", err)
	}
	paths := cfg.DataPaths()
	dc := deploy.Config{
		Store:         st,
		Supervisor:    sup,
		Fetcher:       fetcher,
		Keyring:       keyring,
		AllowUnsigned: cfg.Trust.AllowUnsigned,
		AllowRoot:     cfg.Security.AllowRoot,
		DefaultRunAs:  cfg.DefaultRunAs,
		DeviceID:      cfg.DeviceID,
		DeviceConfig:  cfg.Components,
		WorkDir:       paths.Work,
		ComponentsDir: paths.Components,
		StagingDir:    paths.Dir,
		KeepVersions:  cfg.Artifacts.KeepVersions,
		Events:        bus,
		Clock:         clock,
		Logger:        log.With("part", "deploy"),
		FaultHook:     fault,
	}
	if repo != nil { // a nil *Repository must not become a non-nil interface
		dc.Repository = repo
	}
	engine, err := deploy.New(dc)
	if err != nil {
		return nil, fmt.Errorf("deployment engine: %w", err)
	}
	return engine, nil
}

// warnWeakTrust says loudly, at every start, what weakens the agent's trust.
func warnWeakTrust(cfg *config.Config, log *slog.Logger, bus events.Publisher) {
	if cfg.Trust.AllowUnsigned {
		const msg = "trust.allow_unsigned = true: recipes no trusted key signed will run; development only"
		log.Warn(msg)
		bus.Publish(events.Event{Kind: events.KindWarning, Reason: msg})
	}
	if cfg.Security.AllowRoot {
		log.Warn("security.allow_root = true: recipes may run as root")
	}
	// Said at start, since otherwise the first sign is a refused deployment.
	if root, _ := runner.RunsAsRoot("", cfg.DefaultRunAs); root && !cfg.Security.AllowRoot {
		log.Warn("security.allow_root = false and default_run_as is root (or empty, with the agent running as root): "+
			"components that name no run_as will be refused; set default_run_as in agent.toml", "default_run_as", cfg.DefaultRunAs)
	}
}

// pruneCgroupRoot removes the agent's cgroup root at shutdown once every
// component group under it is gone, so that agents on temporary data
// folders leave nothing behind; a root still in use is left alone.
func pruneCgroupRoot(c cgroup.Config, log *slog.Logger) {
	if c.Disabled {
		return
	}
	m, err := cgroup.NewManager(c)
	if err == nil {
		err = m.Prune()
	}
	if err != nil {
		log.Warn("remove the cgroup root", "root", c.Root, "err", err)
	}
}

// makeDataDirs creates data_dir and its folders. They are reachable (not
// writable) by other users: components running as their own users need to
// reach their version and work folders.
func makeDataDirs(p config.DataPaths) error {
	for _, d := range []string{p.Dir, p.Components, p.Work, p.Artifacts, p.Logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("data folder: %w", err)
		}
	}
	return nil
}

// cacheBytes is the size of the artifact cache, from its index.
func cacheBytes(ctx context.Context, st *store.Store) (int64, error) {
	arts, err := st.ListArtifacts(ctx)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, a := range arts {
		n += a.Size
	}
	return n, nil
}
