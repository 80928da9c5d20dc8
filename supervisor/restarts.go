package supervisor

import (
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/keystone-edge/keystone/recipes"
)

// RestartPolicy is a component's restart rule, taken from its recipe's
// lifecycle.run section.
type RestartPolicy struct {
	// Mode is never, on-failure or always; "" means on-failure.
	Mode recipes.RestartPolicy
	// Initial is the first delay; 0 restarts at once every time.
	Initial time.Duration
	// Max caps the delay; 0 means no cap beyond Initial's growth.
	Max time.Duration
	// Count restarts are allowed within Window; one more makes the component
	// BROKEN. Zero Count allows none.
	Count int
	// Window is the sliding period Count applies to; 0 counts restarts
	// forever.
	Window time.Duration
	// StableRun is how long a process must run for the delay to go back to
	// Initial; 0 means DefaultStableRun.
	StableRun time.Duration
	// Jitter is the fraction by which a delay is randomly spread either way
	// (0.2 = ±20%); 0 means no jitter.
	Jitter float64
	// BrokenRetry is how long a BROKEN component waits before it is tried
	// again with a fresh history; 0 leaves it BROKEN until a command or a
	// redeployment.
	BrokenRetry time.Duration
}

// DefaultStableRun is the run length after which the restart delay resets.
const DefaultStableRun = 10 * time.Second

// DefaultJitter spreads restart delays by ±20%.
const DefaultJitter = 0.2

// Failed starts back off on their own too: a start that fails at once (a
// missing program, a busy cgroup, a bad run_as) costs no run time, so with
// a zero or tiny restart_backoff it would otherwise be retried in a tight
// loop and burn through max_restarts in a moment. The delay after the n-th
// failed start in a row is at least StartRetryMin·2^(n-1), up to
// restart_backoff.max (when that is at least StartRetryMin) or
// StartRetryMax (when max is 0). A start that succeeds ends the series.
const (
	StartRetryMin = 100 * time.Millisecond
	StartRetryMax = time.Minute
)

// PolicyFor returns the restart policy of a recipe's run section with the
// supervisor's defaults filled in. A nil run gives an on-failure policy with
// no delay and no limit.
func PolicyFor(run *recipes.Run) RestartPolicy {
	if run == nil {
		return RestartPolicy{Mode: recipes.RestartOnFailure, Count: 1 << 30, StableRun: DefaultStableRun}
	}
	return RestartPolicy{
		Mode:        run.RestartPolicy,
		Initial:     run.RestartBackoff.Initial.Duration,
		Max:         run.RestartBackoff.Max.Duration,
		Count:       run.MaxRestarts.Count,
		Window:      run.MaxRestarts.Window.Duration,
		StableRun:   DefaultStableRun,
		Jitter:      DefaultJitter,
		BrokenRetry: run.BrokenRetry.Duration,
	}
}

// OutcomeKind says how a run of a component ended.
type OutcomeKind int

const (
	// OutcomeExited: the process exited (or was killed) by itself.
	OutcomeExited OutcomeKind = iota
	// OutcomeStartFailed: the process could not be started.
	OutcomeStartFailed
	// OutcomeUnhealthy: the supervisor killed it after failed health checks.
	OutcomeUnhealthy
	// OutcomeStopped: the supervisor stopped it on purpose (a command, a
	// dependency, agent shutdown); never restarted by the policy.
	OutcomeStopped
)

// Outcome is how one run ended, the input of a restart decision.
type Outcome struct {
	Kind OutcomeKind
	Exit ExitStatus    // for OutcomeExited and OutcomeUnhealthy
	Err  error         // for OutcomeStartFailed
	Ran  time.Duration // how long the process ran; 0 if it never started
	// Detail says why an OutcomeUnhealthy kill happened.
	Detail string
}

func (o Outcome) failed() bool {
	switch o.Kind {
	case OutcomeExited:
		return !o.Exit.Success()
	case OutcomeStopped:
		return false
	}
	return true
}

func (o Outcome) describe() string {
	switch o.Kind {
	case OutcomeStartFailed:
		return "start failed: " + errString(o.Err)
	case OutcomeUnhealthy:
		return o.Detail
	case OutcomeStopped:
		return "stopped"
	}
	return o.Exit.String()
}

func errString(err error) string {
	if err == nil {
		return "unknown error"
	}
	return err.Error()
}

// Decision is what the restart policy says to do after a run ended.
type Decision int

const (
	// DecisionRestart: start again after the returned delay (ERRORED until then).
	DecisionRestart Decision = iota
	// DecisionFinish: exited 0 and is not to be restarted (FINISHED).
	DecisionFinish
	// DecisionGiveUp: failed and the policy says never (ERRORED, stays).
	DecisionGiveUp
	// DecisionBreak: more restarts than allowed within the window (BROKEN);
	// the delay, when not 0, is the broken_retry after which it is tried
	// again.
	DecisionBreak
	// DecisionStop: stopped on purpose (STOPPED).
	DecisionStop
)

var decisionNames = [...]string{"restart", "finish", "give-up", "break", "stop"}

// String names the decision.
func (d Decision) String() string {
	if d < 0 || int(d) >= len(decisionNames) {
		return fmt.Sprintf("Decision(%d)", int(d))
	}
	return decisionNames[d]
}

// Restarts applies a RestartPolicy to the runs of one component: when to
// restart, how long to wait, when to give up. It is pure: time comes in as
// an argument and randomness from the injected source, so it is tested
// without processes or clocks. Not safe for concurrent use.
type Restarts struct {
	policy  RestartPolicy
	rand    func() float64
	clock   stepClock
	backoff *backoff.ExponentialBackOff
	recent  []time.Time // restarts within the window, oldest first
	total   int
	// startFails counts the failed starts since the last process that did
	// start.
	startFails int
}

// stepClock gives the backoff library the time of the decision being made
// instead of letting it read the wall clock.
type stepClock struct{ now time.Time }

func (c *stepClock) Now() time.Time { return c.now }

// NewRestarts returns the restart state of a component under p. rand
// returns values in [0, 1) for jitter; nil means no jitter.
func NewRestarts(p RestartPolicy, rand func() float64) *Restarts {
	if p.Mode == "" {
		p.Mode = recipes.RestartOnFailure
	}
	if p.StableRun <= 0 {
		p.StableRun = DefaultStableRun
	}
	if rand == nil {
		rand = func() float64 { return 0.5 }
	}
	r := &Restarts{policy: p, rand: rand}
	r.backoff = backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.Initial),
		backoff.WithMaxInterval(p.Max),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0), // jitter comes from r.rand, not the global source
		backoff.WithMaxElapsedTime(0),
		backoff.WithClockProvider(&r.clock),
	)
	if p.Max <= 0 {
		r.backoff.MaxInterval = time.Duration(1<<63 - 1)
	}
	return r
}

// Total is the number of restarts decided since the component was created
// or last reset by hand.
func (r *Restarts) Total() int { return r.total }

// Restore carries on the count of a component taken over from the
// previous agent image; the window and the delays start afresh.
func (r *Restarts) Restore(total int) { r.total = max(total, 0) }

// Reset forgets the restart history: a restart by hand clears BROKEN and
// starts the delays and the window afresh.
func (r *Restarts) Reset() {
	r.recent = nil
	r.total = 0
	r.startFails = 0
	r.backoff.Reset()
}

// Decide records how a run ended at now and says what to do next: the
// decision, the delay before a restart, and a reason fit for a state
// transition.
func (r *Restarts) Decide(now time.Time, o Outcome) (Decision, time.Duration, string) {
	r.clock.now = now
	what := o.describe()
	if o.Kind == OutcomeStartFailed {
		r.startFails++
	} else {
		r.startFails = 0 // it did start
	}
	if o.Kind == OutcomeStopped {
		return DecisionStop, 0, what
	}
	failed := o.failed()
	switch r.policy.Mode {
	case recipes.RestartNever:
		if !failed {
			return DecisionFinish, 0, what
		}
		return DecisionGiveUp, 0, what + "; restart_policy is never"
	case recipes.RestartOnFailure:
		if !failed {
			return DecisionFinish, 0, what
		}
	}
	if o.Ran >= r.policy.StableRun {
		r.backoff.Reset()
	}
	if r.policy.Window > 0 {
		keep := r.recent[:0]
		for _, t := range r.recent {
			if now.Sub(t) < r.policy.Window {
				keep = append(keep, t)
			}
		}
		r.recent = keep
	}
	if len(r.recent)+1 > r.policy.Count {
		within := ""
		if r.policy.Window > 0 {
			within = " within " + r.policy.Window.String()
		}
		reason := fmt.Sprintf("%s; more than %d restarts%s (max_restarts)", what, r.policy.Count, within)
		if r.policy.BrokenRetry > 0 {
			reason += fmt.Sprintf("; tried again in %s (broken_retry)", r.policy.BrokenRetry)
		}
		return DecisionBreak, r.policy.BrokenRetry, reason
	}
	r.recent = append(r.recent, now)
	r.total++
	wait := max(r.jitter(r.backoff.NextBackOff()), r.startRetryFloor())
	if rounded := readable(wait); rounded <= wait || r.policy.Max <= 0 || rounded <= r.policy.Max {
		wait = rounded
	}
	return DecisionRestart, wait, fmt.Sprintf("%s; restart %d in %s", what, r.total, wait)
}

// readable rounds a jittered delay so that it prints as "1.2s", not
// "1.183726352s"; the jitter's precision beyond that is of no use.
func readable(d time.Duration) time.Duration {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

// startRetryFloor is the least delay after the failed starts in a row so
// far (see StartRetryMin); 0 when the last run did start.
func (r *Restarts) startRetryFloor() time.Duration {
	if r.startFails == 0 {
		return 0
	}
	ceiling := StartRetryMax
	if r.policy.Max > 0 {
		ceiling = max(r.policy.Max, StartRetryMin)
	}
	floor := StartRetryMin
	for i := 1; i < r.startFails && floor < ceiling; i++ {
		floor *= 2
	}
	return min(floor, ceiling)
}

// jitter spreads d by ±policy.Jitter, never beyond Max.
func (r *Restarts) jitter(d time.Duration) time.Duration {
	if d <= 0 || r.policy.Jitter <= 0 {
		return max(d, 0)
	}
	f := 1 + r.policy.Jitter*(2*r.rand()-1)
	j := time.Duration(float64(d) * f)
	if r.policy.Max > 0 && j > r.policy.Max {
		j = r.policy.Max
	}
	return j
}
