package supervisor

import (
	"context"
	"fmt"
	"time"

	"github.com/keystone-edge/keystone/recipes"
)

// InputKind says what happened to a component, as its core is told.
type InputKind int

const (
	// InputInstall: run the install script (sent once, when the actor is created).
	InputInstall InputKind = iota
	// InputInstalled: the install script finished; Err says whether it failed.
	InputInstalled
	// InputStart: a command to start the process.
	InputStart
	// InputStop: a command to stop the process; Reason says why.
	InputStop
	// InputRestart: a command to stop and start again; clears BROKEN.
	InputRestart
	// InputLaunched: the process of run Gen was started with Pid.
	InputLaunched
	// InputLaunchFailed: run Gen could not be started; Err says why.
	InputLaunchFailed
	// InputExited: the process of run Gen ended with Exit.
	InputExited
	// InputHealth: health check Gen finished; Healthy and Detail say how.
	InputHealth
	// InputTimer: the timer Timer armed as Gen fired.
	InputTimer
	// InputRan: a run of run Gen's instance (a plugin's) ended; Healthy
	// and Detail say how.
	InputRan
	// InputAdopt: the component was handed over by the previous image of
	// the agent process, with Restarts so far (sent once, instead of
	// InputInstall): it counts as installed, and its first start takes
	// over the running process.
	InputAdopt
)

var inputNames = [...]string{"install", "installed", "start", "stop", "restart",
	"launched", "launch-failed", "exited", "health", "timer", "ran", "adopt"}

// String names the input kind.
func (k InputKind) String() string {
	if k < 0 || int(k) >= len(inputNames) {
		return fmt.Sprintf("InputKind(%d)", int(k))
	}
	return inputNames[k]
}

// TimerKind names one of a component's timers.
type TimerKind int

const (
	// TimerRestart fires when the restart delay is over.
	TimerRestart TimerKind = iota
	// TimerProbe fires when the next health check is due.
	TimerProbe
	// TimerBrokenRetry fires when a BROKEN component is to be tried again.
	TimerBrokenRetry
	numTimers
)

// String names the timer.
func (t TimerKind) String() string {
	switch t {
	case TimerRestart:
		return "restart"
	case TimerProbe:
		return "probe"
	case TimerBrokenRetry:
		return "broken-retry"
	}
	return fmt.Sprintf("TimerKind(%d)", int(t))
}

// Input is one thing that happened, fed to Core.Step. At is when it
// happened: the core never reads a clock.
type Input struct {
	Kind    InputKind
	At      time.Time
	Reason  string     // InputStop, InputRestart, InputStart: why
	Err     error      // InputInstalled, InputLaunchFailed
	Exit    ExitStatus // InputExited
	Pid     int        // InputLaunched
	Healthy bool       // InputHealth
	Detail  string     // InputHealth, InputRan: what the check or run saw
	Timer   TimerKind  // InputTimer
	Gen     uint64     // InputLaunched/LaunchFailed/Exited: run; InputHealth/InputTimer: arming
	// Restarts (InputAdopt): the restart count the previous image reached.
	Restarts int
	// Dependency (InputStop): the stop is because a hard dependency is not
	// ready; stopping a running process for it is a FailureDependency.
	Dependency bool
}

// EffectKind says what the actor must do.
type EffectKind int

const (
	// EffectTransition: publish Transition (the state already changed).
	EffectTransition EffectKind = iota
	// EffectInstall: run the install script, then send InputInstalled.
	EffectInstall
	// EffectLaunch: start run Gen of the process, then send InputLaunched or
	// InputLaunchFailed, and InputExited when it ends.
	EffectLaunch
	// EffectStop: run the shutdown script, then send the stop signal and
	// escalate to SIGKILL after the stop timeout. InputExited follows.
	EffectStop
	// EffectArm: (re)arm Timer to fire after Delay, tagged Gen; a timer of
	// the same kind still pending is replaced.
	EffectArm
	// EffectDisarm: cancel Timer if pending.
	EffectDisarm
	// EffectProbe: run the health check once, tagged Gen, then send InputHealth.
	EffectProbe
)

var effectNames = [...]string{"transition", "install", "launch", "stop", "arm", "disarm", "probe"}

// String names the effect kind.
func (k EffectKind) String() string {
	if k < 0 || int(k) >= len(effectNames) {
		return fmt.Sprintf("EffectKind(%d)", int(k))
	}
	return effectNames[k]
}

// Effect is one thing the actor must do, in order. Transitions come before
// the effects they cause, so a subscriber sees STOPPING before the stop
// signal is sent.
type Effect struct {
	Kind       EffectKind
	Transition Transition    // EffectTransition
	Timer      TimerKind     // EffectArm, EffectDisarm
	Delay      time.Duration // EffectArm
	Gen        uint64        // EffectLaunch, EffectArm, EffectProbe
	Reason     string        // EffectStop
}

// Health says how a component's health check is doing.
type Health string

const (
	HealthNone      Health = ""          // no health check configured
	HealthStarting  Health = "starting"  // no conclusive result yet in this run
	HealthHealthy   Health = "healthy"   // the last check passed
	HealthUnhealthy Health = "unhealthy" // the last check failed
)

// CoreConfig is what a core needs to know of its component.
type CoreConfig struct {
	// Policy is the restart policy.
	Policy RestartPolicy
	// Health is the health check; nil means none.
	Health *recipes.Health
	// Runs: the component works in runs (a plugin) whose results come as
	// InputRan; its health is that of its last run.
	Runs bool
	// Rand returns jitter values in [0, 1); nil means no jitter.
	Rand func() float64
}

// stopIntent is why the core asked the process to stop.
type stopIntent struct {
	reason    string
	unhealthy bool // restart under the policy once it has exited
	thenStart bool // a restart command: start again once it has exited
}

// Core is the decision logic of one component: inputs in, effects out. It
// does no I/O, reads no clock and is not safe for concurrent use; the
// component's actor owns it. Model: etcd raft's RawNode.
type Core struct {
	m        *machine
	restarts *Restarts
	health   *recipes.Health
	runs     bool

	installed bool
	run       uint64            // generation of the current run
	timers    [numTimers]uint64 // generation of each timer's last arming
	armed     [numTimers]bool   // whether each timer is pending
	intent    stopIntent        // valid in STOPPING
	startedAt time.Time         // when the current run started
	pid       int               // 0 when no process runs
	live      bool              // a run is up: a process, or a schedule (pid 0)
	hstate    Health            // health of the current run
	hdetail   string            // what the last failed check or run said; "" once one passes
	fails     int               // consecutive counted health failures
	since     time.Time         // time of the last transition
	lastError string            // reason of the last failure
	failure   FailureKind       // kind of the last failure
	failing   FailureKind       // kind of the failure being fired (see fire)
	out       []Effect          // effects of the step in progress
}

// NewCore returns the core of a component in state NEW.
func NewCore(cfg CoreConfig) *Core {
	return &Core{
		m:        newMachine(StateNew),
		restarts: NewRestarts(cfg.Policy, cfg.Rand),
		health:   cfg.Health,
		runs:     cfg.Runs,
	}
}

// CoreStatus is what a core knows of its component at one moment.
type CoreStatus struct {
	State     State
	Pid       int
	Restarts  int
	Since     time.Time
	Health    Health
	LastError string
	// Retrying is true in ERRORED while a restart is pending.
	Retrying bool
	// Failure is the kind of the last failure (see Status.Failure);
	// FailureNone when there was none.
	Failure FailureKind
	// Generation is the current run's; it changes at every launch.
	Generation uint64
	// HealthDetail is what the last failed health check (or plugin run)
	// said while the health is not healthy; "" otherwise.
	HealthDetail string
}

// Status returns the component's current status.
func (c *Core) Status() CoreStatus {
	h, detail := HealthNone, ""
	if (c.health != nil || c.runs) && c.live {
		h = c.hstate
	}
	if h == HealthUnhealthy {
		detail = c.hdetail
	}
	return CoreStatus{
		State:        c.m.current(),
		Pid:          c.pid,
		Restarts:     c.restarts.Total(),
		Since:        c.since,
		Health:       h,
		LastError:    c.lastError,
		Retrying:     c.armed[TimerRestart],
		Failure:      c.failure,
		Generation:   c.run,
		HealthDetail: detail,
	}
}

// State returns the component's current state.
func (c *Core) State() State { return c.m.current() }

// Step applies one input and returns the effects the actor must carry out,
// in order. A command the current state does not allow returns an error
// wrapping ErrIllegal that names the command and the state; no effect is
// lost when it does (the effects before the error are returned too).
func (c *Core) Step(ctx context.Context, in Input) ([]Effect, error) {
	c.out = nil
	err := c.step(ctx, in)
	return c.flush(), err
}

// flush returns the effects of the finished step.
func (c *Core) flush() []Effect {
	out := c.out
	c.out = nil
	return out
}

// fire moves the machine and queues the transition effect at this point of
// the effect list, so order is kept. A move into ERRORED or BROKEN records
// its reason as the last error and c.failing as its kind.
func (c *Core) fire(ctx context.Context, at time.Time, event, reason string) error {
	if err := c.m.fire(ctx, event, reason); err != nil {
		return err
	}
	for _, t := range c.m.take() {
		c.since = at
		switch t.To {
		case StateErrored, StateBroken:
			c.lastError, c.failure = t.Reason, c.failing
		}
		c.out = append(c.out, Effect{Kind: EffectTransition, Transition: t})
	}
	return nil
}

func (c *Core) emit(e Effect) { c.out = append(c.out, e) }

func (c *Core) arm(t TimerKind, d time.Duration) {
	c.timers[t]++
	c.armed[t] = true
	c.emit(Effect{Kind: EffectArm, Timer: t, Delay: d, Gen: c.timers[t]})
}

func (c *Core) disarm(t TimerKind) {
	c.timers[t]++ // a firing already queued is now stale
	if c.armed[t] {
		c.armed[t] = false
		c.emit(Effect{Kind: EffectDisarm, Timer: t})
	}
}

// invalid is the error for a command the current state does not allow.
func (c *Core) invalid(command string) error {
	return &illegalError{command: command, state: c.m.current()}
}

// failWith fires a move into ERRORED (and maybe on to BROKEN) of the
// given kind.
func (c *Core) failWith(ctx context.Context, kind FailureKind, at time.Time, event, reason string) error {
	c.failing = kind
	defer func() { c.failing = FailureNone }()
	return c.fire(ctx, at, event, reason)
}

func (c *Core) step(ctx context.Context, in Input) error {
	switch in.Kind {
	case InputInstall:
		if c.State() != StateNew {
			return c.invalid("install")
		}
		c.emit(Effect{Kind: EffectInstall})
		return nil
	case InputAdopt:
		if c.State() != StateNew {
			return c.invalid("adopt")
		}
		c.restarts.Restore(in.Restarts)
		c.installed = true
		return c.fire(ctx, in.At, evInstalled, "taken over from the previous agent image")
	case InputInstalled:
		if in.Err != nil {
			return c.failWith(ctx, FailureInstall, in.At, evInstallFailed, "install failed: "+in.Err.Error())
		}
		c.installed = true
		return c.fire(ctx, in.At, evInstalled, orDefault(in.Reason, "installed"))
	case InputStart:
		return c.start(ctx, in.At, orDefault(in.Reason, "start requested"))
	case InputStop:
		return c.stop(ctx, in.At, orDefault(in.Reason, "stop requested"), false, in.Dependency)
	case InputRestart:
		if c.State() != StateNew {
			c.restarts.Reset() // a restart by hand clears BROKEN and the history
		}
		return c.stop(ctx, in.At, orDefault(in.Reason, "restart requested"), true, false)
	case InputLaunched:
		return c.launched(ctx, in)
	case InputLaunchFailed:
		if in.Gen != c.run || c.State() != StateStarting {
			return nil
		}
		return c.ended(ctx, in.At, Outcome{Kind: OutcomeStartFailed, Err: in.Err}, evStartFailed)
	case InputExited:
		return c.exited(ctx, in)
	case InputHealth:
		return c.probed(ctx, in)
	case InputTimer:
		return c.timer(ctx, in)
	case InputRan:
		return c.ran(ctx, in)
	}
	return fmt.Errorf("unknown input %v", in.Kind)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// start begins a new run, or reinstalls first when the last install failed.
func (c *Core) start(ctx context.Context, at time.Time, reason string) error {
	s := c.State()
	if !c.installed && (s == StateErrored || s == StateBroken || s == StateStopped) {
		if err := c.fire(ctx, at, evReinstall, reason+"; install again"); err != nil {
			return err
		}
		c.emit(Effect{Kind: EffectInstall})
		return nil
	}
	if s == StateBroken {
		c.restarts.Reset()
	}
	if err := c.fire(ctx, at, evStart, reason); err != nil {
		return err
	}
	c.disarm(TimerRestart)
	c.disarm(TimerBrokenRetry)
	c.run++
	c.emit(Effect{Kind: EffectLaunch, Gen: c.run})
	return nil
}

// stop asks the process to stop, or settles in STOPPED when none runs.
// thenStart makes it a restart. dependency says a hard dependency went
// down: stopping a running process for it is recorded as the failure kind
// FailureDependency, but the last error is left alone (a stop is not a
// failure of the component's own; the transition carries the reason).
func (c *Core) stop(ctx context.Context, at time.Time, reason string, thenStart, dependency bool) error {
	switch s := c.State(); s {
	case StateRunning, StateDegraded:
		c.intent = stopIntent{reason: reason, thenStart: thenStart}
		if dependency && !thenStart {
			c.failure = FailureDependency
		}
		c.disarm(TimerProbe)
		if err := c.fire(ctx, at, evStop, reason); err != nil {
			return err
		}
		c.emit(Effect{Kind: EffectStop, Reason: reason})
		return nil
	case StateStopping:
		// Already on its way down; the last command decides what follows.
		c.intent.thenStart = thenStart
		if !thenStart {
			c.intent.unhealthy = false
			c.intent.reason = reason
		}
		return nil
	case StateStopped:
		if thenStart {
			return c.start(ctx, at, reason)
		}
		return nil // stopping a stopped component is not an error
	case StateInstalled, StateFinished, StateErrored, StateBroken:
		c.disarm(TimerRestart)
		c.disarm(TimerBrokenRetry)
		if thenStart {
			return c.start(ctx, at, reason)
		}
		return c.fire(ctx, at, evHalt, reason)
	}
	if thenStart {
		return c.invalid("restart")
	}
	return c.invalid("stop")
}

func (c *Core) launched(ctx context.Context, in Input) error {
	if in.Gen != c.run || c.State() != StateStarting {
		return nil
	}
	c.pid, c.live = in.Pid, true
	c.startedAt = in.At
	reason := "started" // a run with no process: a plugin's schedule
	if in.Pid != 0 {
		reason = fmt.Sprintf("started, pid %d", in.Pid)
	}
	if err := c.fire(ctx, in.At, evStarted, reason); err != nil {
		return err
	}
	if c.health != nil || c.runs {
		c.hstate = HealthStarting
		c.fails = 0
	}
	if c.health != nil {
		c.arm(TimerProbe, c.health.Interval.Duration)
	}
	return nil
}

// ran takes the result of a plugin's run: it is ready after a good run,
// DEGRADED while its last run failed. It stays scheduled either way: runs
// are cheap to retry, and a restart would not make the next one better.
func (c *Core) ran(ctx context.Context, in Input) error {
	if !c.runs || in.Gen != c.run || !c.live {
		return nil
	}
	s := c.State()
	if s != StateRunning && s != StateDegraded {
		return nil
	}
	if in.Healthy {
		c.hstate = HealthHealthy
		if s == StateDegraded {
			return c.fire(ctx, in.At, evHealthy, "plugin run succeeded")
		}
		return nil
	}
	c.hstate, c.hdetail = HealthUnhealthy, "plugin run failed: "+in.Detail
	if s == StateRunning {
		return c.fire(ctx, in.At, evUnhealthy, c.hdetail)
	}
	return nil
}

func (c *Core) exited(ctx context.Context, in Input) error {
	if in.Gen != c.run || !c.live {
		return nil
	}
	c.pid, c.live = 0, false
	c.disarm(TimerProbe)
	o := Outcome{Kind: OutcomeExited, Exit: in.Exit, Ran: in.At.Sub(c.startedAt)}
	if c.State() == StateStopping {
		intent := c.intent
		c.intent = stopIntent{}
		if intent.unhealthy {
			o.Kind, o.Detail = OutcomeUnhealthy, intent.reason
			return c.ended(ctx, in.At, o, evFailed)
		}
		if err := c.fire(ctx, in.At, evStopped, intent.reason+"; "+in.Exit.stopString()); err != nil {
			return err
		}
		if intent.thenStart {
			return c.start(ctx, in.At, intent.reason)
		}
		return nil
	}
	return c.ended(ctx, in.At, o, evFailed)
}

// ended applies the restart policy to a run that ended by itself (or was
// killed as unhealthy) and moves to FINISHED, ERRORED or BROKEN.
func (c *Core) ended(ctx context.Context, at time.Time, o Outcome, failEvent string) error {
	d, wait, reason := c.restarts.Decide(at, o)
	kind := outcomeFailure(o)
	switch d {
	case DecisionFinish:
		if failEvent == evFailed {
			return c.fire(ctx, at, evFinished, reason)
		}
		return c.failWith(ctx, kind, at, failEvent, reason)
	case DecisionRestart:
		if err := c.failWith(ctx, kind, at, failEvent, reason); err != nil {
			return err
		}
		c.arm(TimerRestart, wait)
		return nil
	case DecisionBreak:
		if err := c.failWith(ctx, kind, at, failEvent, o.describe()); err != nil {
			return err
		}
		if err := c.failWith(ctx, kind, at, evBreak, reason); err != nil {
			return err
		}
		if wait > 0 {
			c.arm(TimerBrokenRetry, wait)
		}
		return nil
	default: // DecisionGiveUp; DecisionStop does not reach here
		return c.failWith(ctx, kind, at, failEvent, reason)
	}
}

// outcomeFailure is the kind of failure a run that ended so is.
func outcomeFailure(o Outcome) FailureKind {
	switch o.Kind {
	case OutcomeStartFailed:
		return FailureStart
	case OutcomeUnhealthy:
		return FailureUnhealthy
	}
	return failureOf(o.Exit)
}

func (c *Core) timer(ctx context.Context, in Input) error {
	if in.Timer < 0 || in.Timer >= numTimers || in.Gen != c.timers[in.Timer] {
		return nil // disarmed or re-armed since
	}
	c.armed[in.Timer] = false
	switch in.Timer {
	case TimerRestart:
		if c.State() != StateErrored {
			return nil
		}
		return c.start(ctx, in.At, "restarting after backoff")
	case TimerBrokenRetry:
		if c.State() != StateBroken {
			return nil
		}
		return c.start(ctx, in.At, "trying again after broken_retry")
	case TimerProbe:
		if s := c.State(); s != StateRunning && s != StateDegraded {
			return nil
		}
		c.emit(Effect{Kind: EffectProbe, Gen: c.timers[TimerProbe]})
	}
	return nil
}

func (c *Core) probed(ctx context.Context, in Input) error {
	if c.health == nil || in.Gen != c.timers[TimerProbe] || !c.live {
		return nil // a probe of an earlier run, or stopped meanwhile
	}
	s := c.State()
	if s != StateRunning && s != StateDegraded {
		return nil
	}
	if in.Healthy {
		c.fails = 0
		c.hstate = HealthHealthy
		if s == StateDegraded {
			if err := c.fire(ctx, in.At, evHealthy, "health check passed"); err != nil {
				return err
			}
		}
		c.arm(TimerProbe, c.health.Interval.Duration)
		return nil
	}
	if c.hstate == HealthStarting && in.At.Sub(c.startedAt) < c.health.StartPeriod.Duration {
		// Failures inside start_period do not count.
		c.arm(TimerProbe, c.health.Interval.Duration)
		return nil
	}
	c.fails++
	c.hstate = HealthUnhealthy
	threshold := max(c.health.FailureThreshold, 1)
	reason := fmt.Sprintf("health check failed (%d/%d): %s", c.fails, threshold, in.Detail)
	c.hdetail = reason
	if s == StateRunning {
		if err := c.fire(ctx, in.At, evUnhealthy, reason); err != nil {
			return err
		}
	}
	if c.fails < threshold {
		c.arm(TimerProbe, c.health.Interval.Duration)
		return nil
	}
	c.intent = stopIntent{reason: reason, unhealthy: true}
	if err := c.fire(ctx, in.At, evStop, reason+"; restarting"); err != nil {
		return err
	}
	c.emit(Effect{Kind: EffectStop, Reason: reason})
	return nil
}
