package supervisor

import (
	"errors"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/recipes"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestRestartsJitterStaysWithinBoundsAndMax(t *testing.T) {
	p := RestartPolicy{Mode: recipes.RestartAlways, Initial: time.Second, Max: 8 * time.Second, Count: 100, Jitter: 0.2}
	for _, tc := range []struct {
		rand float64
		want []time.Duration
	}{
		{0, []time.Duration{800 * time.Millisecond, 1600 * time.Millisecond, 3200 * time.Millisecond, 6400 * time.Millisecond, 6400 * time.Millisecond}},
		{0.5, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second}},
		// Delays are rounded to read well: 1.2s, not 1.1999996s.
		{0.999999, []time.Duration{1200 * time.Millisecond, 2400 * time.Millisecond, 4800 * time.Millisecond, 8 * time.Second, 8 * time.Second}},
	} {
		r := NewRestarts(p, func() float64 { return tc.rand })
		now := t0
		for i, want := range tc.want {
			d, wait, reason := r.Decide(now, Outcome{Kind: OutcomeExited, Exit: ExitStatus{Code: 1}})
			if d != DecisionRestart {
				t.Fatalf("rand %v restart %d: decision %v (%s)", tc.rand, i, d, reason)
			}
			if wait != want {
				t.Errorf("rand %v restart %d: wait %v, want %v", tc.rand, i, wait, want)
			}
			now = now.Add(wait)
		}
	}
}

func TestRestartsWindowSlides(t *testing.T) {
	r := NewRestarts(RestartPolicy{Mode: recipes.RestartOnFailure, Count: 2, Window: time.Minute}, nil)
	crash := Outcome{Kind: OutcomeExited, Exit: ExitStatus{Code: 1}}
	for i, at := range []time.Duration{0, 10 * time.Second} {
		if d, _, reason := r.Decide(t0.Add(at), crash); d != DecisionRestart {
			t.Fatalf("restart %d: %v (%s)", i, d, reason)
		}
	}
	// A third within the minute is one too many.
	if d, _, _ := r.Decide(t0.Add(30*time.Second), crash); d != DecisionBreak {
		t.Fatalf("third restart within the window: %v, want break", d)
	}
	// Once the first has left the window there is room again.
	r = NewRestarts(RestartPolicy{Mode: recipes.RestartOnFailure, Count: 2, Window: time.Minute}, nil)
	r.Decide(t0, crash)
	r.Decide(t0.Add(10*time.Second), crash)
	if d, _, reason := r.Decide(t0.Add(61*time.Second), crash); d != DecisionRestart {
		t.Fatalf("after the window slid: %v (%s)", d, reason)
	}
}

func TestRestartsModes(t *testing.T) {
	ok := Outcome{Kind: OutcomeExited, Exit: ExitStatus{Code: 0}}
	crash := Outcome{Kind: OutcomeExited, Exit: ExitStatus{Signal: "SIGSEGV", Code: -1}}
	startErr := Outcome{Kind: OutcomeStartFailed, Err: errors.New("exec: no such file")}
	stopped := Outcome{Kind: OutcomeStopped}
	for _, tc := range []struct {
		mode recipes.RestartPolicy
		o    Outcome
		want Decision
	}{
		{recipes.RestartNever, ok, DecisionFinish},
		{recipes.RestartNever, crash, DecisionGiveUp},
		{recipes.RestartNever, startErr, DecisionGiveUp},
		{recipes.RestartOnFailure, ok, DecisionFinish},
		{recipes.RestartOnFailure, crash, DecisionRestart},
		{recipes.RestartOnFailure, startErr, DecisionRestart},
		{recipes.RestartAlways, ok, DecisionRestart},
		{recipes.RestartAlways, crash, DecisionRestart},
		{recipes.RestartAlways, stopped, DecisionStop},
		{"", crash, DecisionRestart}, // on-failure by default
	} {
		r := NewRestarts(RestartPolicy{Mode: tc.mode, Count: 5}, nil)
		if d, _, reason := r.Decide(t0, tc.o); d != tc.want {
			t.Errorf("%q after %q: %v, want %v", tc.mode, reason, d, tc.want)
		}
	}
}

func TestRestartsZeroCountBreaksAtOnce(t *testing.T) {
	r := NewRestarts(RestartPolicy{Mode: recipes.RestartAlways, Count: 0, Window: time.Minute}, nil)
	if d, _, _ := r.Decide(t0, Outcome{Kind: OutcomeExited}); d != DecisionBreak {
		t.Fatalf("count 0: %v, want break", d)
	}
}

// A start that fails at once must not be retried in a tight loop, even with
// a zero restart_backoff: failed starts in a row back off from
// StartRetryMin up to restart_backoff.max, and a process that starts ends
// the series (its exits restart at once again).
func TestRestartsFailedStartsBackOffEvenWithZeroBackoff(t *testing.T) {
	startErr := Outcome{Kind: OutcomeStartFailed, Err: errors.New("create cgroup: busy")}
	crash := Outcome{Kind: OutcomeExited, Exit: ExitStatus{Code: 1}, Ran: time.Millisecond}
	ms := time.Millisecond
	for _, tc := range []struct {
		name    string
		max     time.Duration
		history []Outcome
		want    []time.Duration
	}{
		{"capped by max", time.Second,
			[]Outcome{startErr, startErr, startErr, startErr, startErr, startErr},
			[]time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second}},
		{"no max: capped by StartRetryMax", 0,
			[]Outcome{startErr, startErr, startErr, startErr, startErr, startErr, startErr, startErr, startErr, startErr},
			[]time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 6400 * ms, 12800 * ms, 25600 * ms, 51200 * ms}},
		{"max below the floor", 10 * ms,
			[]Outcome{startErr, startErr, startErr},
			[]time.Duration{100 * ms, 100 * ms, 100 * ms}},
		{"a start ends the series", time.Second,
			[]Outcome{startErr, startErr, crash, crash, startErr},
			[]time.Duration{100 * ms, 200 * ms, 0, 0, 100 * ms}},
	} {
		r := NewRestarts(RestartPolicy{Mode: recipes.RestartAlways, Max: tc.max, Count: 1000, Window: time.Minute, Jitter: DefaultJitter}, nil)
		now := t0
		for i, o := range tc.history {
			d, wait, reason := r.Decide(now, o)
			if d != DecisionRestart {
				t.Fatalf("%s: outcome %d: %v (%s)", tc.name, i, d, reason)
			}
			if wait != tc.want[i] {
				t.Errorf("%s: outcome %d: wait %v, want %v (%s)", tc.name, i, wait, tc.want[i], reason)
			}
			now = now.Add(wait)
		}
	}
	// With the old tight loop, 1000 failed starts took no time at all; now a
	// minute holds about 60 of them once the delay reaches a 1s max.
	r := NewRestarts(RestartPolicy{Mode: recipes.RestartAlways, Max: time.Second, Count: 1000, Window: time.Minute}, nil)
	now, n := t0, 0
	for now.Before(t0.Add(time.Minute)) {
		d, wait, reason := r.Decide(now, startErr)
		if d != DecisionRestart {
			t.Fatalf("failed start %d within a minute: %v (%s)", n, d, reason)
		}
		now, n = now.Add(wait), n+1
	}
	if n > 70 {
		t.Fatalf("%d failed starts retried within a minute", n)
	}
}
