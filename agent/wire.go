package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"

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

// The steps of New and Start. Each pushes on a.stack the step that undoes
// what it started, right after starting it, so that a failure half-way
// leaves nothing that Shutdown does not undo.

// newAgent is an agent with the defaults of opts applied and nothing open.
func newAgent(cfg *config.Config, opts Options) *Agent {
	opts.Version = cmp.Or(opts.Version, "dev")
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	log := opts.Logger
	if log == nil {
		w := cmp.Or[io.Writer](opts.Stderr, os.Stderr)
		log = slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: cfg.SlogLevel()}))
	}
	clock := cmp.Or[supervisor.Clock](opts.Clock, supervisor.SystemClock{})
	return &Agent{cfg: cfg, opts: opts, log: log, clock: clock, fatal: make(chan error, 4), handOver: make(chan *HandOver, 1)}
}

// openDataDir creates and locks the data folder, then opens the store and
// the component logs in it. The folders are reachable (not writable) by
// other users: components running as their own users need to reach their
// version and work folders.
func (a *Agent) openDataDir(ctx context.Context) error {
	paths := a.cfg.DataPaths()
	for _, d := range []string{paths.Dir, paths.Components, paths.Work, paths.Artifacts, paths.Logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("data folder: %w", err)
		}
	}
	lock, err := lockDataDir(paths.Dir)
	if err != nil {
		return err
	}
	a.stack.push("release the data folder lock", func(context.Context) error { return lock.release() })
	a.log.Info("agent starting", "version", a.opts.Version, "device_id", a.cfg.DeviceID,
		"config", a.cfg.Source, "data_dir", paths.Dir, "pid", os.Getpid())

	if a.store, err = store.Open(ctx, paths.DB, store.WithLogger(a.log), store.WithClock(a.clock.Now)); err != nil {
		return fmt.Errorf("open store %s: %w", paths.DB, err)
	}
	a.stack.push("close the store", func(context.Context) error { return a.store.Close() })
	if a.logs, err = logs.Open(logs.Config{Dir: paths.Logs, Now: a.clock.Now}); err != nil {
		return fmt.Errorf("open component logs %s: %w", paths.Logs, err)
	}
	a.stack.push("close the component logs", func(context.Context) error { return a.logs.Close() })
	return nil
}

// recordEvents creates the bus and starts writing it to the store. The bus
// and its recorder come first, so that nothing published from here on is
// lost; they are stopped last (after the components), so that the shutdown
// transitions are recorded too.
func (a *Agent) recordEvents(ctx context.Context) (*recorder, error) {
	a.bus = events.New(a.clock.Now)
	rec, err := newRecorder(ctx, a.store, a.log)
	if err != nil {
		return nil, err
	}
	recCtx, stopRec := context.WithCancel(context.WithoutCancel(ctx))
	recSub := a.bus.Subscribe(recCtx, recorderBuffer)
	a.own("stop recording events", stopRec, func() { rec.run(recCtx, recSub) })
	warnWeakTrust(a.cfg, a.log, a.bus)
	return rec, nil
}

// newSupervisor builds the process runner, the plugin machinery and the
// supervisor over them.
func (a *Agent) newSupervisor() (*pluginParts, error) {
	cfg, log := a.cfg, a.log
	cgroups := cgroupsFor(a.opts.Cgroups, cfg.DataDir)
	run, err := runner.New(runner.Config{ShimPath: a.opts.ShimPath, Logs: a.logs, Cgroups: cgroups, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("process runner: %w", err)
	}
	log.Info("component cgroups", "mode", run.CgroupMode().String(), "root", cgroups.Root)
	a.stack.push("remove the empty cgroup root", func(context.Context) error {
		pruneCgroupRoot(cgroups, log)
		return nil
	})
	pp, err := a.newPluginParts(run)
	if err != nil {
		return nil, err
	}
	var procs supervisor.ProcessRecorder = a.store
	if a.opts.FaultHook != nil {
		procs = faultRecorder{a.store, a.opts.FaultHook}
	}
	a.sup, err = supervisor.New(supervisor.Config{
		Launcher: plugins.Dispatcher{
			Process: &supervisor.ProcessLauncher{Runner: run, DefaultRunAs: cfg.DefaultRunAs,
				AllowRoot: cfg.Security.AllowRoot, Events: a.bus},
			Plugins: pp.launcher,
		},
		Recorder: procs,
		Reaper:   supervisor.OrphanReaper(run, orphanStopTimeout),
		Sampler:  supervisor.NewProcSampler(sampleInterval),
		Events:   a.bus,
		Clock:    a.clock,
		Shell:    supervisor.ShellUser{DefaultRunAs: cfg.DefaultRunAs, AllowRoot: cfg.Security.AllowRoot},
		Logs:     a.logs,
		Logger:   log.With("part", "supervisor"),
		Takeover: a.takeover(),
	})
	if err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	return pp, nil
}

// faultRecorder calls the fault hook with FaultProcessStarted before it
// records a process (tests).
type faultRecorder struct {
	*store.Store
	fault func(string)
}

func (r faultRecorder) RecordProcess(ctx context.Context, p store.Process) error {
	r.fault(FaultProcessStarted)
	return r.Store.RecordProcess(ctx, p)
}

// newMetrics builds the Prometheus registry and starts counting
// deployments from the bus.
func (a *Agent) newMetrics(ctx context.Context, pp *pluginParts) (*metrics, error) {
	metricsCtx, stopMetrics := context.WithCancel(context.WithoutCancel(ctx))
	m, err := newMetrics(metricsConfig{
		Context:       metricsCtx,
		Version:       a.opts.Version,
		Components:    a.sup,
		CPUSeconds:    processCPUSeconds,
		OutboxPending: a.store.OutboxLen,
		MQTTConnected: func() bool { return a.comms != nil && a.comms.Connected() },
		CacheBytes:    func(ctx context.Context) (int64, error) { return cacheBytes(ctx, a.store) },
		Logger:        a.log,
		Plugins:       pp.exporter,
	})
	if err != nil {
		stopMetrics()
		return nil, err
	}
	metricsSub := a.bus.Subscribe(metricsCtx, recorderBuffer)
	a.own("stop counting deployments", stopMetrics, func() { m.count(metricsSub) })
	return m, nil
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

// newEngine builds the deployment engine and what it needs: the artifact
// fetcher, the component repository (when configured) and the keyring.
func (a *Agent) newEngine(ctx context.Context, sup deploy.Supervisor) (*deploy.Engine, error) {
	cfg := a.cfg
	fetcher, repo, err := ota.New(ctx, ota.Config{
		DataDir:       cfg.DataDir,
		Index:         a.store,
		CacheLimit:    int64(cfg.Artifacts.CacheLimit),
		AllowHTTP:     cfg.Artifacts.AllowHTTP,
		CAFile:        cfg.Artifacts.CAFile,
		TUFRoot:       cfg.Trust.TUFRoot,
		RepositoryURL: cfg.Trust.Repository,
		Unpack: ota.UnpackLimits{
			MaxBytes: int64(cfg.Artifacts.MaxUnpackedSize),
			MaxFiles: cfg.Artifacts.MaxEntries,
		},
		Logger: a.log.With("part", "ota"),
	})
	if err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	keyring, err := sign.LoadKeyring(cfg.Trust.Keys...)
	if err != nil {
		return nil, fmt.Errorf("trust keys: %w", err)
	}
	a.keyring = keyring
	paths := cfg.DataPaths()
	dc := deploy.Config{
		Store:         a.store,
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
		Events:        a.bus,
		Clock:         a.clock,
		Logger:        a.log.With("part", "deploy"),
		FaultHook:     a.opts.FaultHook,
	}
	if repo != nil { // a nil *Repository must not become a non-nil interface
		shared := &sharedRepository{repo: repo}
		dc.Repository, a.releases = shared, shared
	}
	engine, err := deploy.New(dc)
	if err != nil {
		return nil, fmt.Errorf("deployment engine: %w", err)
	}
	return engine, nil
}

// serveAPI serves the local API on the Unix socket and, when http_listen
// is set, /metrics and /healthz on it.
func (a *Agent) serveAPI(ctx context.Context) error {
	cfg := a.cfg.API
	streams, closeStreams := context.WithCancel(context.WithoutCancel(ctx))
	a.api.streams = streams
	a.addrs = Addresses{Socket: cfg.Socket}
	sock, err := listenSocket(ctx, cfg.Socket, cfg.SocketGroup)
	if err != nil {
		closeStreams()
		return err
	}
	a.stack.push("remove the API socket", func(context.Context) error {
		if err := os.Remove(cfg.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	})
	a.serve(ctx, "local API", a.api.socketHandler(), sock, closeStreams)
	if cfg.HTTPListen == "" {
		return nil
	}
	var lc net.ListenConfig
	tcp, err := lc.Listen(ctx, "tcp", cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("http_listen %s: %w", cfg.HTTPListen, err)
	}
	a.addrs.HTTP = tcp.Addr().String()
	a.serve(ctx, "metrics listener", a.api.tcpHandler(), tcp, closeStreams)
	return nil
}

// serve runs h on l in its own goroutine until Shutdown; Serve failing for
// any other reason is fatal.
func (a *Agent) serve(ctx context.Context, name string, h http.Handler, l net.Listener, closeStreams func()) {
	if a.trimmer != nil {
		h = a.trimmer.handler(h) // a request is activity: the collector resumes
	}
	srv := newHTTPServer(h, a.log, context.WithoutCancel(ctx))
	done := goOwned(func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.fail(fmt.Errorf("%s: %w", name, err))
		}
	})
	a.stack.push("stop the "+name, func(ctx context.Context) error {
		closeStreams() // followers have no end of their own
		err := srv.Shutdown(ctx)
		done()
		return err
	})
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

// takeover is what the previous image of this process handed over, for
// the supervisor.
func (a *Agent) takeover() map[string]supervisor.Takeover {
	h := a.opts.HandedOver
	if h == nil {
		return nil
	}
	a.log.Info("taking over from the previous agent image", "what", h.String())
	if h.ExecFailed != "" {
		a.log.Warn("the hand-over target could not be started; this release keeps its components", "err", h.ExecFailed)
	}
	return h.Takeover
}

// releaseSource fetches a verified agent release into a folder.
type releaseSource interface {
	FetchRelease(ctx context.Context, version, goos, goarch, dest string) error
}

// sharedRepository serializes the deployment engine's and the self-update's
// use of the component repository: each call refreshes the trusted
// metadata in one cache folder.
type sharedRepository struct {
	mu   sync.Mutex
	repo *ota.Repository
}

func (s *sharedRepository) Resolve(ctx context.Context, name, version string) (*ota.Resolved, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.repo.Resolve(ctx, name, version)
}

func (s *sharedRepository) FetchRelease(ctx context.Context, version, goos, goarch, dest string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.repo.FetchRelease(ctx, version, goos, goarch, dest)
}

// newUpdater wires the agent's update of itself.
func (a *Agent) newUpdater() *updater {
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	u := &updater{
		version: a.opts.Version, exe: exe, rootDir: a.cfg.RootDir, dataDir: a.cfg.DataDir,
		clock: a.clock, log: a.log.With("part", "update"), bus: a.bus,
		healthy: a.updateHealthy,
		fault:   a.opts.FaultHook,
		handOver: func(exe, reason string) {
			select {
			case a.handOver <- &HandOver{Target: exe, Reason: reason, dataDir: a.cfg.DataDir}:
			default: // one hand-over at a time
			}
		},
	}
	if rs := a.releases; rs != nil {
		u.fetch = func(ctx context.Context, version, dir string) error {
			return rs.FetchRelease(ctx, version, runtime.GOOS, runtime.GOARCH, dir)
		}
	}
	return u
}

// updateHealthy is what a release on trial must pass to be committed: the
// agent's own health (supervisor loop, store), every component handed
// over to it still managed, and the broker connection when one is
// configured.
func (a *Agent) updateHealthy(ctx context.Context) error {
	if err := a.health.check(ctx); err != nil {
		return err
	}
	if h := a.opts.HandedOver; h != nil {
		for name, t := range h.Takeover {
			if t.Process == nil {
				continue
			}
			st, err := a.sup.Component(name)
			if err != nil {
				return fmt.Errorf("component %s handed over but not managed: %w", name, err)
			}
			if st.State == supervisor.StateNew || st.State == supervisor.StateInstalled {
				return fmt.Errorf("component %s not taken over yet (%s)", name, st.State)
			}
		}
	}
	if a.comms != nil && !a.comms.Connected() {
		return errors.New("not connected to the broker")
	}
	return nil
}
