package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// Config wires a Supervisor. Only Launcher is required.
type Config struct {
	// Launcher starts component processes; required.
	Launcher Launcher
	// Installer runs install scripts; nil means ShellInstaller.
	Installer Installer
	// Prober runs health checks; nil means NewChecker().
	Prober Prober
	// Recorder records started processes; nil records nothing (and so
	// cannot find them after an agent crash).
	Recorder ProcessRecorder
	// Reaper stops processes left by an earlier agent, found through
	// Recorder at Start; nil means they are only forgotten.
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
	cfg   Config
	deps  actorDeps
	inbox *mailbox[mgrMsg]

	actors  atomic.Pointer[[]*Actor] // immutable, sorted by name; for Snapshot
	life    sync.Mutex               // serialises Start and Stop
	running atomic.Bool              // Start finished and Stop not called

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
		cfg.Installer = ShellInstaller{}
	}
	if cfg.Prober == nil {
		cfg.Prober = NewChecker()
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
	for _, p := range procs {
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
	return nil
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
	for _, a := range actors {
		st := a.Status()
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
				return fmt.Errorf("%s is %s: %s: %w", n, st.State, st.LastError, ErrComponentFailed)
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
			return fmt.Errorf("waiting for %v: %w", waiting, ctx.Err())
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

// ---- the loop ----

type msgKind int

const (
	msgChanged  msgKind = iota // an actor's status changed
	msgCmdDone                 // an actor answered a command the loop sent
	msgApply                   // replace the set
	msgCommand                 // a command by hand
	msgShutdown                // agent shutdown
)

type mgrMsg struct {
	kind   msgKind
	name   string
	actor  *Actor // msgCmdDone: which actor answered
	comps  []*Component
	input  Input
	result chan<- commandResult // msgCommand
	reply  chan<- error         // msgApply, msgShutdown
}

// entry is one supervised component, owned by the loop.
type entry struct {
	actor      *Actor
	wanted     bool
	stopReason string
	busy       bool
	// stopWaiters are stops by hand, answered once the component is down.
	stopWaiters []chan<- commandResult
	// restarting: a restart by hand is taking the component down (its
	// dependents first); restartWaiters are answered once it started again.
	restarting     bool
	restartWaiters []chan<- commandResult
	removing       bool       // stop, then remove the actor
	next           *Component // replace with this once stopped
}

type loopState struct {
	entries  map[string]*entry
	applying chan<- error // an Apply waiting for removals to finish
	shutdown chan<- error // a Stop waiting for everything to stop
	stopping bool
}

func (s *Supervisor) loop() {
	defer close(s.done)
	ls := &loopState{entries: map[string]*entry{}}
	defer s.quitAll(ls)
	for {
		select {
		case <-s.inbox.ready():
			for _, m := range s.inbox.drain() {
				s.handle(ls, m)
			}
			s.converge(ls)
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *Supervisor) handle(ls *loopState, m mgrMsg) {
	switch m.kind {
	case msgChanged:
		s.broadcast()
	case msgCmdDone:
		if e := ls.entries[m.name]; e != nil && e.actor == m.actor {
			e.busy = false
		}
	case msgApply:
		if ls.stopping {
			m.reply <- ErrStopped
			return
		}
		if ls.applying != nil {
			m.reply <- errors.New("supervisor apply: another apply is in progress")
			return
		}
		s.apply(ls, m.comps)
		ls.applying = m.reply
	case msgCommand:
		e := ls.entries[m.name]
		if e == nil || e.removing {
			m.result <- commandResult{err: fmt.Errorf("%s: %w", m.name, ErrNotFound)}
			return
		}
		if ls.stopping {
			m.result <- commandResult{err: ErrStopped}
			return
		}
		s.byHand(ls, e, m)
	case msgShutdown:
		ls.stopping = true
		ls.shutdown = m.reply
		for _, e := range ls.entries {
			e.wanted, e.stopReason = false, "agent shutdown"
		}
	}
}

// byHand carries out a command by hand. A stop goes through reconcile, so
// that hard dependents stop first, and is answered once the component is
// down. A start is sent at once when its hard dependencies are ready, and
// otherwise answered with the current state: it starts when they are. A
// restart of a running component first takes it down like a stop, then
// restarts it; of one that runs nothing, it is sent at once.
func (s *Supervisor) byHand(ls *loopState, e *entry, m mgrMsg) {
	st := e.actor.settledStatus()
	switch m.input.Kind {
	case InputStop:
		e.wanted, e.stopReason = false, m.input.Reason
		e.stopWaiters = append(e.stopWaiters, m.result)
		return
	case InputStart:
		e.wanted = true
		if st.State.Active() || st.State == StateNew || !s.hardDepsReady(ls, e) {
			m.result <- commandResult{state: st.State}
			return
		}
	case InputRestart:
		e.wanted = true
		if st.State.Active() || e.restarting {
			e.restarting = true
			e.restartWaiters = append(e.restartWaiters, m.result)
			return
		}
	default:
		e.wanted = true
	}
	e.busy = true
	a := e.actor
	a.ask(m.input, func(r commandResult) {
		m.result <- r
		s.inbox.put(mgrMsg{kind: msgCmdDone, name: a.Name(), actor: a})
	})
}

// restartNow sends the restart of a component a restart by hand took down,
// and answers the waiting callers with its result.
func (s *Supervisor) restartNow(e *entry) {
	e.restarting, e.busy = false, true
	waiters := e.restartWaiters
	e.restartWaiters = nil
	a := e.actor
	a.ask(Input{Kind: InputRestart, Reason: "restart requested"}, func(r commandResult) {
		for _, w := range waiters {
			w <- r
		}
		s.inbox.put(mgrMsg{kind: msgCmdDone, name: a.Name(), actor: a})
	})
}

func (s *Supervisor) hardDepsReady(ls *loopState, e *entry) bool {
	for _, d := range e.actor.comp.Recipe.Dependencies {
		dep, ok := ls.entries[d.Name]
		if !ok || d.Type == recipes.DependencySoft {
			continue
		}
		if !dep.actor.settledStatus().Ready() {
			return false
		}
	}
	return true
}

// apply diffs the new set against the entries.
func (s *Supervisor) apply(ls *loopState, comps []*Component) {
	desired := map[string]*Component{}
	for _, c := range comps {
		desired[c.Name()] = c
	}
	for name, e := range ls.entries {
		c, ok := desired[name]
		switch {
		case !ok:
			e.removing, e.wanted, e.next = true, false, nil
			e.stopReason = "removed from the deployment"
		case !reflect.DeepEqual(c, e.actor.comp):
			e.removing, e.wanted, e.next = true, false, c
			e.stopReason = fmt.Sprintf("replaced by %s %s", name, c.Version())
		default:
			e.removing, e.next = false, nil
			e.wanted = true
			if st := e.actor.settledStatus(); st.Failed() {
				e.busy = true
				s.askLoop(e, Input{Kind: InputRestart, Reason: "redeployed"})
			}
		}
	}
	for name, c := range desired {
		if _, ok := ls.entries[name]; !ok {
			ls.entries[name] = s.newEntry(c)
		}
	}
	s.publishActors(ls)
}

func (s *Supervisor) newEntry(c *Component) *entry {
	a := newActor(s.ctx, c, s.deps)
	go a.run()
	return &entry{actor: a, wanted: true}
}

// askLoop sends a command whose answer comes back to the loop.
func (s *Supervisor) askLoop(e *entry, in Input) {
	a := e.actor
	a.ask(in, func(r commandResult) {
		if r.err != nil {
			s.cfg.Logger.Debug("command refused", "component", a.Name(), "input", in.Kind.String(), "err", r.err)
		}
		s.inbox.put(mgrMsg{kind: msgCmdDone, name: a.Name(), actor: a})
	})
}

// converge sends what reconcile decides, finishes removals and
// replacements, and answers a waiting Apply or Stop once done.
func (s *Supervisor) converge(ls *loopState) {
	for {
		changedSet := false
		for name, e := range ls.entries {
			if !e.removing || e.busy {
				continue
			}
			if !isDown(e.actor.settledStatus()) {
				continue
			}
			e.actor.quit()
			e.answerStops(commandResult{err: fmt.Errorf("%s: %w", name, ErrRemoved)})
			if e.next != nil {
				ls.entries[name] = s.newEntry(e.next)
			} else {
				delete(ls.entries, name)
			}
			changedSet = true
		}
		if changedSet {
			s.publishActors(ls)
		}
		if !changedSet {
			break
		}
	}
	for _, e := range ls.entries {
		if e.restarting && !e.busy && !e.removing && !ls.stopping && isDown(e.actor.settledStatus()) {
			s.restartNow(e)
		}
	}
	nodes := make(map[string]*node, len(ls.entries))
	for name, e := range ls.entries {
		nd := &node{Status: e.actor.settledStatus(), Wanted: e.wanted && !e.restarting, StopReason: e.stopReason, Busy: e.busy}
		if e.restarting {
			nd.StopReason = "restart requested"
		}
		for _, d := range e.actor.comp.Recipe.Dependencies {
			if _, ok := ls.entries[d.Name]; !ok {
				continue
			}
			if d.Type == recipes.DependencySoft {
				nd.Soft = append(nd.Soft, d.Name)
			} else {
				nd.Hard = append(nd.Hard, d.Name)
			}
		}
		nodes[name] = nd
	}
	for _, act := range reconcile(nodes) {
		e := ls.entries[act.Name]
		e.busy = true
		kind := InputStop
		if act.Start {
			kind = InputStart
		}
		s.askLoop(e, Input{Kind: kind, Reason: act.Reason})
	}
	for _, e := range ls.entries {
		if st := e.actor.settledStatus(); len(e.stopWaiters) > 0 && !e.busy && isDown(st) {
			e.answerStops(commandResult{state: st.State})
		}
	}
	if ls.applying != nil && !anyRemoving(ls) {
		ls.applying <- nil
		ls.applying = nil
	}
	if ls.shutdown != nil && allDown(ls) {
		ls.shutdown <- nil
		ls.shutdown = nil
	}
}

func anyRemoving(ls *loopState) bool {
	for _, e := range ls.entries {
		if e.removing {
			return true
		}
	}
	return false
}

func allDown(ls *loopState) bool {
	for _, e := range ls.entries {
		if e.busy || !isDown(e.actor.settledStatus()) {
			return false
		}
	}
	return true
}

// isDown: no process runs and none is about to.
func isDown(st Status) bool {
	return !st.State.Active() && !(st.State == StateErrored && st.Retrying)
}

func (e *entry) answerStops(r commandResult) {
	for _, w := range e.stopWaiters {
		w <- r
	}
	e.stopWaiters = nil
	if r.err != nil { // the component is gone: pending restarts fail too
		for _, w := range e.restartWaiters {
			w <- r
		}
		e.restartWaiters, e.restarting = nil, false
	}
}

func (s *Supervisor) publishActors(ls *loopState) {
	list := make([]*Actor, 0, len(ls.entries))
	for _, e := range ls.entries {
		list = append(list, e.actor)
	}
	slices.SortFunc(list, func(a, b *Actor) int {
		switch {
		case a.Name() < b.Name():
			return -1
		case a.Name() > b.Name():
			return 1
		}
		return 0
	})
	s.actors.Store(&list)
	s.broadcast()
}

// quitAll ends every actor; an actor still running a process stops it.
func (s *Supervisor) quitAll(ls *loopState) {
	var wg sync.WaitGroup
	for _, e := range ls.entries {
		wg.Add(1)
		go func(a *Actor) {
			defer wg.Done()
			a.quit()
		}(e.actor)
	}
	wg.Wait()
	for _, e := range ls.entries {
		e.answerStops(commandResult{err: ErrStopped})
	}
	if ls.applying != nil {
		ls.applying <- ErrStopped
	}
	if ls.shutdown != nil {
		ls.shutdown <- nil
	}
}
