package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// actorDeps is what an actor needs from outside; the Supervisor fills it.
type actorDeps struct {
	launcher  Launcher
	installer Installer
	prober    Prober
	recorder  ProcessRecorder
	events    events.Publisher
	clock     Clock
	rand      func() float64
	logger    *slog.Logger
	// changed is called (from the actor goroutine) once a message changed
	// the status, after its effects were carried out. It must not block.
	changed func(name string, st Status)
}

// actorMsg is one message to an actor: an input for its core, and where to
// answer for commands.
type actorMsg struct {
	in   Input
	done func(commandResult) // nil: no answer wanted; called in the actor goroutine, must not block
	// freeze: hand over (see Supervisor.Freeze) and answer here.
	freeze chan<- Frozen
}

type commandResult struct {
	state State
	err   error
}

// Actor owns one component: its core (state machine, restart policy,
// health counting), its process handle and its timers. Its state changes
// only inside its goroutine; others send it messages and read its
// immutable Status. Model: etcd raft's node.run around a RawNode.
type Actor struct {
	comp   *Component
	deps   actorDeps
	core   *Core
	inbox  *mailbox[actorMsg]
	status atomic.Pointer[Status] // for readers: updated as soon as the core moves
	// settled is the status as of the last message fully handled, its
	// events published. The supervisor decides on it, so its commands to
	// other components follow this component's events on the bus.
	settled atomic.Pointer[Status]

	// Owned by the actor goroutine.
	handle   Handle
	handleOf uint64 // the run handle belongs to
	recorded bool
	timers   [numTimers]Timer
	takeover *Takeover // handed over by the previous image; used by the first launch
	frozen   bool      // handed over to the next image: handles nothing more
	now      time.Time // time of the message being handled

	ctx    context.Context // the actor's life; done when it must quit
	cancel context.CancelFunc
	done   chan struct{}
	helper sync.WaitGroup // install, stop, probe and exit-wait goroutines
}

// newActor builds the actor of c; run starts it.
func newActor(parent context.Context, c *Component, deps actorDeps) *Actor {
	cfg := CoreConfig{Rand: deps.rand, Runs: c.Recipe.Metadata.Kind == recipes.KindPlugin}
	if run := c.Recipe.Lifecycle.Run; run != nil {
		cfg.Policy = PolicyFor(run)
		cfg.Health = run.Health
	} else {
		cfg.Policy = PolicyFor(nil)
	}
	a := &Actor{
		comp:  c,
		deps:  deps,
		core:  NewCore(cfg),
		inbox: newMailbox[actorMsg](),
		done:  make(chan struct{}),
	}
	a.ctx, a.cancel = context.WithCancel(parent)
	a.publishStatus()
	a.settled.Store(a.status.Load())
	return a
}

// Name returns the component's name.
func (a *Actor) Name() string { return a.comp.Name() }

// Status returns the component's latest status.
func (a *Actor) Status() Status { return *a.status.Load() }

// settledStatus returns the status as of the last message fully handled.
func (a *Actor) settledStatus() Status { return *a.settled.Load() }

// send queues an input without waiting.
func (a *Actor) send(in Input) { a.inbox.put(actorMsg{in: in}) }

// ask queues an input; done gets the core's answer.
func (a *Actor) ask(in Input, done func(commandResult)) { a.inbox.put(actorMsg{in: in, done: done}) }

// run is the actor goroutine. It installs the component, then handles
// messages until quit. On quit it stops a process still running, cancels
// its timers and waits for its helper goroutines.
func (a *Actor) run() {
	defer close(a.done)
	if a.takeover != nil {
		a.send(Input{Kind: InputAdopt, Restarts: a.takeover.Restarts})
	} else {
		a.send(Input{Kind: InputInstall})
	}
	for {
		select {
		case <-a.inbox.ready():
			for _, m := range a.inbox.drain() {
				a.handleMsg(m)
			}
		case <-a.ctx.Done():
			a.shutdown()
			return
		}
	}
}

// quit ends the actor goroutine and waits for it.
func (a *Actor) quit() {
	a.cancel()
	<-a.done
}

func (a *Actor) shutdown() {
	if a.frozen {
		return // the processes belong to the next image
	}
	for i, t := range a.timers {
		if t != nil {
			t.Stop()
			a.timers[i] = nil
		}
	}
	// Normally the supervisor stopped the component first; if not (the
	// agent is going away fast), the process must not be left unmanaged.
	cleanup := context.WithoutCancel(a.ctx)
	if a.handle != nil {
		if err := a.handle.Stop(cleanup); err != nil {
			a.deps.logger.Warn("stop on quit", "component", a.Name(), "err", err)
		}
		<-a.handle.Done()
		a.handle = nil
	}
	a.helper.Wait()
	a.clearRecord(cleanup)
}

func (a *Actor) handleMsg(m actorMsg) {
	if m.freeze != nil && !a.frozen {
		m.freeze <- a.freeze()
	}
	if a.frozen {
		return
	}
	a.now = a.deps.clock.Now()
	in := m.in
	in.At = a.now
	if in.Kind == InputExited && in.Gen == a.handleOf {
		a.handle = nil
	}
	effects, err := a.core.Step(a.ctx, in)
	if err != nil {
		err = fmt.Errorf("%s: %w", a.Name(), err)
	}
	// The status goes out before the effects: whoever sees a transition
	// event or an armed timer finds the status at least as new.
	a.publishStatus()
	a.apply(effects)
	if a.handle == nil && a.recorded {
		a.clearRecord(a.ctx)
	}
	// Settle before answering: whoever gets the answer finds the settled
	// status already moved.
	if st := a.status.Load(); a.settled.Load() != st {
		a.settled.Store(st)
		if a.deps.changed != nil {
			a.deps.changed(a.Name(), *st)
		}
	}
	if m.done != nil {
		m.done(commandResult{state: a.core.State(), err: err})
	} else if err != nil {
		a.deps.logger.Error("component input refused", "component", a.Name(), "input", in.Kind.String(), "err", err)
	}
}

// apply carries out effects in order. Effects that produce an input at once
// (a launch, a zero-delay timer) feed it back before going on.
func (a *Actor) apply(effects []Effect) {
	for len(effects) > 0 {
		e := effects[0]
		effects = effects[1:]
		var next *Input
		switch e.Kind {
		case EffectTransition:
			a.publishTransition(e.Transition)
		case EffectInstall:
			a.install()
		case EffectLaunch:
			next = a.launch(e.Gen)
		case EffectStop:
			a.stopProcess(e.Reason)
		case EffectArm:
			next = a.arm(e.Timer, e.Delay, e.Gen)
		case EffectDisarm:
			if t := a.timers[e.Timer]; t != nil {
				t.Stop()
				a.timers[e.Timer] = nil
			}
		case EffectProbe:
			a.probe(e.Gen)
		}
		if next != nil {
			a.now = a.deps.clock.Now() // a launch takes time: its transition is stamped when it is done
			next.At = a.now
			more, err := a.core.Step(a.ctx, *next)
			if err != nil {
				a.deps.logger.Error("component input refused", "component", a.Name(), "input", next.Kind.String(), "err", err)
			}
			a.publishStatus()
			effects = append(more, effects...)
		}
	}
}

func (a *Actor) publishTransition(t Transition) {
	a.deps.logger.Info("component state", "component", a.Name(), "from", t.From.String(), "to", t.To.String(), "reason", t.Reason)
	a.deps.events.Publish(events.Event{
		At: a.now, Kind: events.KindTransition, Component: a.Name(),
		From: t.From.String(), To: t.To.String(), Reason: t.Reason,
		Detail: map[string]string{"version": a.comp.Version()},
	})
}

func (a *Actor) publishStatus() {
	cs := a.core.Status()
	r := a.comp.Recipe
	st := &Status{
		Name: r.Metadata.Name, Version: r.Metadata.Version, Kind: r.Metadata.Kind,
		State: cs.State, Pid: cs.Pid, Restarts: cs.Restarts, Since: cs.Since,
		Health: cs.Health, LastError: cs.LastError, Retrying: cs.Retrying,
		Failure: cs.Failure, Generation: cs.Generation, HealthDetail: cs.HealthDetail,
	}
	if old := a.status.Load(); old != nil && *old == *st {
		return
	}
	a.status.Store(st)
}

func (a *Actor) install() {
	a.helper.Add(1)
	go func() {
		defer a.helper.Done()
		err := a.deps.installer.Install(a.ctx, a.comp)
		a.send(Input{Kind: InputInstalled, Err: err})
	}()
}

func (a *Actor) launch(gen uint64) *Input {
	h, err := a.adoptOrLaunch()
	if err != nil {
		return &Input{Kind: InputLaunchFailed, Gen: gen, Err: err}
	}
	a.handle, a.handleOf = h, gen
	// Durable before anyone can see it RUNNING: a crash from here on
	// leaves a process the next agent finds.
	a.record(h)
	a.helper.Add(1)
	exited := func() {
		defer a.helper.Done()
		a.send(Input{Kind: InputExited, Gen: gen, Exit: h.Exit()})
	}
	if n, ok := h.(doneNotifier); ok {
		n.AfterDone(exited) // no goroutine per component blocked on Done
	} else {
		go func() {
			<-h.Done()
			exited()
		}()
	}
	if rr, ok := h.(RunReporter); ok {
		a.helper.Add(1)
		go func() {
			defer a.helper.Done()
			for {
				select {
				case r := <-rr.Runs():
					a.send(Input{Kind: InputRan, Gen: gen, Healthy: r.OK, Detail: r.Detail})
				case <-h.Done():
					return
				}
			}
		}()
	}
	return &Input{Kind: InputLaunched, Gen: gen, Pid: h.Pid()}
}

// record writes the process record.
func (a *Actor) record(h Handle) {
	p := h.Process()
	p.Component = a.Name()
	if p.PID == 0 {
		p.PID = h.Pid()
	}
	if p.PID <= 0 {
		return
	}
	if err := a.deps.recorder.RecordProcess(a.ctx, p); err != nil {
		a.warn("record process", err)
		return
	}
	a.recorded = true
}

func (a *Actor) clearRecord(ctx context.Context) {
	if !a.recorded {
		return
	}
	if err := a.deps.recorder.ClearProcess(ctx, a.Name()); err != nil {
		a.warn("clear process record", err)
		return
	}
	a.recorded = false
}

// stopProcess stops the process (shutdown script, stop signal, SIGKILL) in
// a helper goroutine; the exit arrives as InputExited.
func (a *Actor) stopProcess(reason string) {
	h := a.handle
	if h == nil {
		return
	}
	a.helper.Add(1)
	go func() {
		defer a.helper.Done()
		// It runs to completion even when the actor is told to quit, so a
		// stop is never cut short into an orphan.
		if err := h.Stop(context.WithoutCancel(a.ctx)); err != nil {
			a.warn("stop process ("+reason+")", err)
		}
	}()
}

// arm (re)arms a timer. A zero delay needs no timer: the firing is handled
// at once, which keeps restart latency down to the launch itself.
func (a *Actor) arm(t TimerKind, d time.Duration, gen uint64) *Input {
	if old := a.timers[t]; old != nil {
		old.Stop()
		a.timers[t] = nil
	}
	if d <= 0 {
		return &Input{Kind: InputTimer, Timer: t, Gen: gen}
	}
	a.timers[t] = a.deps.clock.AfterFunc(d, func() {
		a.send(Input{Kind: InputTimer, Timer: t, Gen: gen})
	})
	return nil
}

func (a *Actor) probe(gen uint64) {
	run := a.comp.Recipe.Lifecycle.Run
	if run == nil || run.Health == nil {
		return
	}
	h := run.Health
	a.helper.Add(1)
	go func() {
		defer a.helper.Done()
		timeout := h.Timeout.Duration
		if timeout <= 0 {
			timeout = defaultProbeTimeout
		}
		ctx, cancel := context.WithTimeout(a.ctx, timeout)
		defer cancel()
		ok, detail := a.deps.prober.Probe(ctx, a.comp, h.Check)
		a.send(Input{Kind: InputHealth, Gen: gen, Healthy: ok, Detail: detail})
	}()
}

func (a *Actor) warn(what string, err error) {
	a.deps.logger.Warn(what, "component", a.Name(), "err", err)
	a.deps.events.Publish(events.Event{
		At: a.deps.clock.Now(), Kind: events.KindWarning, Component: a.Name(),
		Reason: what + ": " + err.Error(),
	})
}
