package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/keystone-edge/keystone/agent/config"
	"github.com/keystone-edge/keystone/runner"
	"github.com/keystone-edge/keystone/runner/logs"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/events"
	"github.com/keystone-edge/keystone/supervisor/plugins"
)

// The steps of New and Start. Each pushes on a.stack the step that undoes
// what it started, right after starting it, so that a failure half-way
// leaves nothing that Shutdown does not undo.

// newAgent is an agent with the defaults of opts applied and nothing open.
func newAgent(cfg *config.Config, opts Options) *Agent {
	a := &Agent{
		cfg: cfg, opts: opts, log: opts.Logger, clock: opts.Clock, version: opts.Version,
		shutdownTimeout: opts.ShutdownTimeout, fatal: make(chan error, 4),
	}
	if a.log == nil {
		w := opts.Stderr
		if w == nil {
			w = os.Stderr
		}
		a.log = slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: cfg.SlogLevel()}))
	}
	if a.clock == nil {
		a.clock = supervisor.SystemClock{}
	}
	if a.version == "" {
		a.version = "dev"
	}
	if a.shutdownTimeout <= 0 {
		a.shutdownTimeout = DefaultShutdownTimeout
	}
	return a
}

// openDataDir creates and locks the data folder, then opens the store and
// the component logs in it.
func (a *Agent) openDataDir(ctx context.Context) error {
	paths := a.cfg.DataPaths()
	if err := makeDataDirs(paths); err != nil {
		return err
	}
	lock, err := lockDataDir(paths.Dir)
	if err != nil {
		return err
	}
	a.stack.push("release the data folder lock", func(context.Context) error { return lock.release() })
	a.log.Info("agent starting", "version", a.version, "device_id", a.cfg.DeviceID,
		"config", a.cfg.Source, "data_dir", paths.Dir, "pid", os.Getpid())

	a.store, err = store.Open(ctx, paths.DB, store.WithLogger(a.log), store.WithClock(a.clock.Now))
	if err != nil {
		return fmt.Errorf("open store %s: %w", paths.DB, err)
	}
	a.stack.push("close the store", func(context.Context) error { return a.store.Close() })

	a.logs, err = logs.Open(logs.Config{Dir: paths.Logs, Now: a.clock.Now})
	if err != nil {
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
	recDone := goOwned(func() { rec.run(recCtx, recSub) })
	a.stack.push("stop recording events", func(context.Context) error {
		stopRec()
		recDone()
		return nil
	})
	warnWeakTrust(a.cfg, a.log, a.bus)
	return rec, nil
}

// newSupervisor builds the process runner, the plugin machinery and the
// supervisor over them.
func (a *Agent) newSupervisor() (*pluginParts, error) {
	cfg, log := a.cfg, a.log
	cgroups := cgroupsFor(a.opts.Cgroups, cfg.DataPaths().Dir)
	run, err := runner.New(runner.Config{ShimPath: a.opts.ShimPath, Logs: a.logs, Cgroups: cgroups, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("process runner: %w", err)
	}
	log.Info("component cgroups", "mode", run.CgroupMode().String(), "root", cgroups.Root)
	a.stack.push("remove the empty cgroup root", func(context.Context) error {
		pruneCgroupRoot(cgroups, log)
		return nil
	})
	pp, err := newPluginParts(cfg, run, a.store, a.logs, a.bus, a.clock, log.With("part", "plugins"))
	if err != nil {
		return nil, err
	}
	a.stack.push("release the WASM engine", func(ctx context.Context) error { return pp.wasm.Close(ctx) })
	a.sup, err = supervisor.New(supervisor.Config{
		Launcher: plugins.Dispatcher{
			Process: &supervisor.ProcessLauncher{Runner: run, DefaultRunAs: cfg.DefaultRunAs,
				AllowRoot: cfg.Security.AllowRoot, Events: a.bus},
			Plugins: pp.launcher,
		},
		Recorder: processRecorder(a.store, a.opts.FaultHook),
		Reaper:   supervisor.OrphanReaper(run, orphanStopTimeout),
		Sampler:  supervisor.NewProcSampler(sampleInterval),
		Events:   a.bus,
		Clock:    a.clock,
		Shell:    supervisor.ShellUser{DefaultRunAs: cfg.DefaultRunAs, AllowRoot: cfg.Security.AllowRoot},
		Logger:   log.With("part", "supervisor"),
	})
	if err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	return pp, nil
}

// newMetrics builds the Prometheus registry and starts counting
// deployments from the bus.
func (a *Agent) newMetrics(ctx context.Context, pp *pluginParts) (*metrics, error) {
	metricsCtx, stopMetrics := context.WithCancel(context.WithoutCancel(ctx))
	st := a.store
	m, err := newMetrics(metricsConfig{
		Context:       metricsCtx,
		Version:       a.version,
		Components:    a.sup,
		CPUSeconds:    processCPUSeconds,
		OutboxPending: st.OutboxLen,
		CacheBytes:    func(ctx context.Context) (int64, error) { return cacheBytes(ctx, st) },
		Logger:        a.log,
		Plugins:       pp.exporter,
	})
	if err != nil {
		stopMetrics()
		return nil, err
	}
	metricsSub := a.bus.Subscribe(metricsCtx, recorderBuffer)
	metricsDone := goOwned(func() { m.count(metricsSub) })
	a.stack.push("stop counting deployments", func(context.Context) error {
		stopMetrics()
		metricsDone()
		return nil
	})
	return m, nil
}

// startEngine runs the deployment engine until ctx ends or Shutdown; its
// failure is fatal.
func (a *Agent) startEngine(ctx context.Context) {
	engCtx, stopEngine := context.WithCancel(ctx)
	engDone := goOwned(func() {
		if err := a.runEngine(engCtx); err != nil && engCtx.Err() == nil {
			select {
			case a.fatal <- fmt.Errorf("deployment engine: %w", err):
			default:
			}
		}
	})
	a.stack.push("stop the deployment engine", func(context.Context) error {
		stopEngine()
		engDone()
		return nil
	})
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
	base := context.WithoutCancel(ctx)
	serve(&a.stack, "local API", newHTTPServer(a.api.socketHandler(), a.log, base), sock, closeStreams, a.fatal)
	if cfg.HTTPListen == "" {
		return nil
	}
	var lc net.ListenConfig
	tcp, err := lc.Listen(ctx, "tcp", cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("http_listen %s: %w", cfg.HTTPListen, err)
	}
	a.addrs.HTTP = tcp.Addr().String()
	serve(&a.stack, "metrics listener", newHTTPServer(a.api.tcpHandler(), a.log, base), tcp, closeStreams, a.fatal)
	return nil
}

// startWatch applies the watch folder, if any, until ctx ends or Shutdown.
func (a *Agent) startWatch(ctx context.Context) {
	if a.watch == nil {
		return
	}
	wctx, stopWatch := context.WithCancel(ctx)
	watchDone := goOwned(func() {
		if err := a.watch.run(wctx); err != nil {
			a.log.Error("watch folder stopped", "err", err)
			a.bus.Publish(events.Event{Kind: events.KindWarning, Reason: "watch folder stopped: " + err.Error()})
		}
	})
	a.stack.push("stop watching the recipe folder", func(context.Context) error {
		stopWatch()
		watchDone()
		return nil
	})
}

// startSystemd tells systemd the agent is ready and pings its watchdog
// while the agent is healthy, until ctx ends or Shutdown.
func (a *Agent) startSystemd(ctx context.Context) {
	sd := systemd{log: a.log}
	wdCtx, stopWatchdog := context.WithCancel(ctx)
	wdDone := goOwned(func() { sd.watchdog(wdCtx, a.health.check) })
	a.stack.push("stop the systemd watchdog", func(context.Context) error {
		sd.stopping()
		stopWatchdog()
		wdDone()
		return nil
	})
	sd.ready()
}

// processRecorder is the store as the supervisor records processes in it;
// with a fault hook, the hook is called with FaultProcessStarted first.
func processRecorder(st *store.Store, fault func(string)) supervisor.ProcessRecorder {
	if fault == nil {
		return st
	}
	return faultRecorder{Store: st, fault: fault}
}

// faultRecorder calls the fault hook before recording a process (tests).
type faultRecorder struct {
	*store.Store
	fault func(string)
}

func (r faultRecorder) RecordProcess(ctx context.Context, p store.Process) error {
	r.fault(FaultProcessStarted)
	return r.Store.RecordProcess(ctx, p)
}
