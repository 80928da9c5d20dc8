package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/keystone-edge/keystone/runner/logs"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// Config wires a Supervisor. Only Launcher is required.
type Config struct {
	// Launcher starts component processes; required.
	Launcher Launcher
	// Installer runs install scripts; nil means a ShellInstaller with
	// Shell.
	Installer Installer
	// Prober runs health checks; nil means NewChecker() with Shell.
	Prober Prober
	// Logs receives what the default Installer's scripts write, in each
	// component's log; nil drops it (a failure still quotes the end of
	// stderr).
	Logs *logs.Manager
	// Shell says who the default Installer and Prober run scripts as
	// (agent.toml's default_run_as and security.allow_root); the zero
	// value never runs them as root.
	Shell ShellUser
	// Recorder records started processes; nil records nothing (and so
	// cannot find them after an agent crash).
	Recorder ProcessRecorder
	// Reaper stops processes left by an earlier agent, found through
	// Recorder at Start; nil means they are only forgotten. A Reaper that
	// is also a LeftoverSweeper (OrphanReaper is) then sweeps up what no
	// record names.
	Reaper Reaper
	// Sampler measures CPU and memory for Snapshot; nil leaves them 0
	// (NewProcSampler measures through /proc).
	Sampler Sampler
	// Events receives every transition and warning; nil means events.Discard.
	Events events.Publisher
	// Clock gives time and timers; nil means SystemClock.
	Clock Clock
	// Rand returns jitter values in [0, 1); nil means math/rand/v2.
	Rand func() float64
	// Logger; nil discards.
	Logger *slog.Logger
	// Takeover, by component name: what the previous image of this agent
	// process handed over (see Freeze). Start leaves these processes
	// alone; the first Apply takes over those it names with the same
	// version and stops the rest.
	Takeover map[string]Takeover
}

// Supervisor owns the set of component actors and the dependencies between
// them: it starts components in dependency order (independent ones in
// parallel), stops them in reverse, stops the hard dependents of a
// component that leaves RUNNING and starts them again when it recovers.
//
// All decisions about the set are made in one goroutine (the loop); callers
// talk to it through methods that send it messages. Create with New, then
// Start; Stop ends it.
type Supervisor struct {
	cfg  Config
	deps actorDeps
	// takeover: what is left to claim of Config.Takeover; the loop's once
	// started.
	takeover map[string]Takeover
	inbox    *mailbox[mgrMsg]

	actors  atomic.Pointer[[]*Actor]          // immutable, sorted by name; for Snapshot
	waiting atomic.Pointer[map[string]string] // immutable; what a down component waits for
	life    sync.Mutex                        // serialises Start and Stop
	running atomic.Bool                       // Start finished and Stop not called

	changeMu sync.Mutex
	changeCh chan struct{} // closed and replaced on every status change

	ctx    context.Context // the loop's life
	cancel context.CancelFunc
	done   chan struct{}
}

// New checks cfg and returns a Supervisor that is not yet running.
func New(cfg Config) (*Supervisor, error) {
	if cfg.Launcher == nil {
		return nil, errors.New("supervisor: Config.Launcher is required")
	}
	if cfg.Installer == nil {
		cfg.Installer = ShellInstaller{ShellUser: cfg.Shell, Logs: cfg.Logs}
	}
	if cfg.Prober == nil {
		c := NewChecker()
		c.ShellUser = cfg.Shell
		cfg.Prober = c
	}
	if cfg.Recorder == nil {
		cfg.Recorder = nopRecorder{}
	}
	if cfg.Events == nil {
		cfg.Events = events.Discard
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Supervisor{
		cfg:      cfg,
		takeover: maps.Clone(cfg.Takeover),
		inbox:    newMailbox[mgrMsg](),
		changeCh: make(chan struct{}),
		done:     make(chan struct{}),
	}
	s.deps = actorDeps{
		launcher: cfg.Launcher, installer: cfg.Installer, prober: cfg.Prober,
		recorder: cfg.Recorder, events: cfg.Events, clock: cfg.Clock,
		rand: cfg.Rand, logger: cfg.Logger,
		changed: func(name string, _ Status) {
			s.inbox.put(mgrMsg{kind: msgChanged, name: name})
		},
	}
	empty := []*Actor{}
	s.actors.Store(&empty)
	return s, nil
}

// Start stops every process an earlier agent left behind (found in the
// Recorder, matched by pid and start time so a reused pid is never killed),
// then starts the supervisor loop. Components are added with Apply. Leftover
// processes are stopped, not adopted: the agent cannot re-attach to their
// pipes and exit status, so it starts them afresh under its own control.
// Processes handed over by the previous image of this agent process
// (Config.Takeover) are the exception: they are left alone here and taken
// over at the first Apply.
func (s *Supervisor) Start(ctx context.Context) error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.ctx != nil {
		return errors.New("supervisor: already started")
	}
	if err := s.reapLeftovers(ctx); err != nil {
		return err
	}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.running.Store(true)
	go s.loop()
	return nil
}

func (s *Supervisor) reapLeftovers(ctx context.Context) error {
	procs, err := s.cfg.Recorder.ListProcesses(ctx)
	if err != nil {
		return fmt.Errorf("supervisor start: list recorded processes: %w", err)
	}
	keepPids, keepGroups := s.takeoverKeeps()
	for _, p := range procs {
		if pid, ok := keepPids[p.Component]; ok && pid == p.PID {
			continue // handed over, still running: taken over at the first Apply
		}
		if s.cfg.Reaper != nil {
			if err := s.cfg.Reaper.Reap(ctx, p); err != nil {
				return fmt.Errorf("supervisor start: stop leftover process %d of %s: %w", p.PID, p.Component, err)
			}
		}
		s.cfg.Logger.Info("stopped process left by an earlier agent", "component", p.Component, "pid", p.PID)
		s.cfg.Events.Publish(events.Event{
			At: s.cfg.Clock.Now(), Kind: events.KindWarning, Component: p.Component,
			Reason: fmt.Sprintf("stopped process %d left running by an earlier agent", p.PID),
		})
		if err := s.cfg.Recorder.ClearProcess(ctx, p.Component); err != nil {
			return fmt.Errorf("supervisor start: forget leftover process of %s: %w", p.Component, err)
		}
	}
	if sw, ok := s.cfg.Reaper.(LeftoverSweeper); ok {
		s.sweepLeftovers(ctx, sw, keepGroups)
	}
	return nil
}

// sweepLeftovers stops what an earlier agent started but never recorded,
// and reports each find as a warning. A sweep that fails is reported too,
// but does not stop the agent: a component whose leftovers are still there
// fails to start (its cgroup is busy) and says so, and never runs twice.
func (s *Supervisor) sweepLeftovers(ctx context.Context, sw LeftoverSweeper, keep []string) {
	found, err := sw.Sweep(ctx, keep)
	for _, lo := range found {
		procs := make([]string, len(lo.Processes))
		pids := make([]int, len(lo.Processes))
		for i, p := range lo.Processes {
			procs[i] = fmt.Sprintf("%d (%s)", p.PID, p.Name)
			pids[i] = p.PID
		}
		reason := fmt.Sprintf("stopped processes an earlier agent left running unrecorded in %s: pid %s",
			lo.Where, strings.Join(procs, ", pid "))
		s.cfg.Logger.Warn("stopped unrecorded processes left by an earlier agent", "component", lo.Component, "where", lo.Where, "pids", pids)
		s.cfg.Events.Publish(events.Event{At: s.cfg.Clock.Now(), Kind: events.KindWarning, Component: lo.Component, Reason: reason})
	}
	if err != nil {
		s.cfg.Logger.Warn("sweep of leftover processes", "err", err)
		s.cfg.Events.Publish(events.Event{At: s.cfg.Clock.Now(), Kind: events.KindWarning, Reason: "sweep of leftover processes: " + err.Error()})
	}
}

// Stop is agent shutdown: every component is stopped, dependents before
// their dependencies, with the reason "agent shutdown" (a stop, never a
// failure), then the loop and every actor end. If ctx ends first, the
// remaining processes are stopped at once without waiting for order.
// Stop returns once nothing is left running. Calling it twice is harmless.
func (s *Supervisor) Stop(ctx context.Context) error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.ctx == nil {
		return nil
	}
	s.running.Store(false)
	reply := make(chan error, 1)
	s.inbox.put(mgrMsg{kind: msgShutdown, reply: reply})
	var err error
	select {
	case err = <-reply:
	case <-ctx.Done():
		err = fmt.Errorf("supervisor stop: %w; stopping the rest at once", ctx.Err())
	case <-s.done:
	}
	s.cancel()
	<-s.done
	return err
}

// Apply makes comps the supervised set: components not in it are stopped
// (dependents first) and removed, changed ones are stopped and replaced,
// new ones are installed; then each is started once its dependencies allow.
// An unchanged component that had failed (BROKEN, or ERRORED for good) or
// was stopped by hand is started again. comps must be a resolved set (see
// recipes/graph): every dependency present, no cycles. Apply returns once
// the removals and replacements are done; use WaitReady to wait for the
// starts.
func (s *Supervisor) Apply(ctx context.Context, comps []*Component) error {
	seen := map[string]bool{}
	for _, c := range comps {
		if c == nil || c.Recipe == nil || c.Name() == "" {
			return errors.New("supervisor apply: a component without a recipe or name")
		}
		if seen[c.Name()] {
			return fmt.Errorf("supervisor apply: %s listed twice", c.Name())
		}
		seen[c.Name()] = true
	}
	return s.request(ctx, mgrMsg{kind: msgApply, comps: comps})
}

// StartComponent starts a component by hand (and lets the supervisor keep
// it running); it answers with the state reached.
func (s *Supervisor) StartComponent(ctx context.Context, name string) (State, error) {
	return s.command(ctx, name, InputStart, "start requested")
}

// StopComponent stops a component by hand, and with it its hard
// dependents; it stays stopped until started, restarted or redeployed.
func (s *Supervisor) StopComponent(ctx context.Context, name string) (State, error) {
	return s.command(ctx, name, InputStop, "stop requested")
}

// RestartComponent stops and starts a component by hand. It clears BROKEN
// and the restart history.
func (s *Supervisor) RestartComponent(ctx context.Context, name string) (State, error) {
	return s.command(ctx, name, InputRestart, "restart requested")
}

func (s *Supervisor) command(ctx context.Context, name string, kind InputKind, reason string) (State, error) {
	reply := make(chan commandResult, 1)
	msg := mgrMsg{kind: msgCommand, name: name, input: Input{Kind: kind, Reason: reason}, result: reply}
	if err := s.send(msg); err != nil {
		return 0, err
	}
	select {
	case r := <-reply:
		return r.state, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-s.done:
		return 0, ErrStopped
	}
}

func (s *Supervisor) send(m mgrMsg) error {
	if !s.running.Load() {
		return ErrStopped
	}
	s.inbox.put(m)
	return nil
}

func (s *Supervisor) request(ctx context.Context, m mgrMsg) error {
	reply := make(chan error, 1)
	m.reply = reply
	if err := s.send(m); err != nil {
		return err
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return ErrStopped
	}
}

// Snapshot returns every component's status, sorted by name. The slice and
// its values are the caller's.
func (s *Supervisor) Snapshot() []Status {
	actors := *s.actors.Load()
	out := make([]Status, 0, len(actors))
	var pids []int
	var waiting map[string]string
	if w := s.waiting.Load(); w != nil {
		waiting = *w
	}
	for _, a := range actors {
		st := a.Status()
		if !st.State.Active() && !st.Failed() {
			st.WaitingFor = waiting[st.Name]
		}
		if st.Pid > 0 {
			pids = append(pids, st.Pid)
		}
		out = append(out, st)
	}
	if s.cfg.Sampler != nil && len(pids) > 0 {
		use := s.cfg.Sampler.Sample(pids)
		for i := range out {
			if u, ok := use[out[i].Pid]; ok && out[i].Pid > 0 {
				out[i].CPUPercent, out[i].RSSBytes = u.CPUPercent, u.RSSBytes
			}
		}
	}
	return out
}

// Component returns one component's status.
func (s *Supervisor) Component(name string) (Status, error) {
	for _, st := range s.Snapshot() {
		if st.Name == name {
			return st, nil
		}
	}
	return Status{}, fmt.Errorf("%s: %w", name, ErrNotFound)
}

// WaitReady waits until every named component is ready (RUNNING and, if it
// has a health check, healthy; FINISHED counts too) and returns nil, or
// returns an error wrapping ErrComponentFailed as soon as one has failed
// (BROKEN, or ERRORED with no restart pending), or ctx's error, naming the
// components not ready. It is how a deployment waits for health_timeout.
func (s *Supervisor) WaitReady(ctx context.Context, names []string) error {
	for {
		ch := s.changed()
		byName := map[string]Status{}
		for _, st := range s.Snapshot() {
			byName[st.Name] = st
		}
		var waiting []string
		for _, n := range names {
			st, ok := byName[n]
			switch {
			case !ok:
				waiting = append(waiting, n+" (not supervised)")
			case st.Failed():
				return &FailedError{Name: n, State: st.State, LastError: st.LastError}
			case !st.Ready() && st.State != StateFinished:
				waiting = append(waiting, fmt.Sprintf("%s (%s)", n, describe(st)))
			}
		}
		if len(waiting) == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			// The cause, not ctx.Err(): a caller's deadline reads as
			// "health_timeout reached", never as "context canceled".
			return fmt.Errorf("not ready: %s: %w", strings.Join(waiting, ", "), context.Cause(ctx))
		}
	}
}

// changed returns a channel closed at the next status change.
func (s *Supervisor) changed() <-chan struct{} {
	s.changeMu.Lock()
	defer s.changeMu.Unlock()
	return s.changeCh
}

func (s *Supervisor) broadcast() {
	s.changeMu.Lock()
	close(s.changeCh)
	s.changeCh = make(chan struct{})
	s.changeMu.Unlock()
}
