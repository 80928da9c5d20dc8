package plugins

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// draws returns a rand that gives rs in turn.
func draws(rs ...float64) func() float64 {
	return func() float64 {
		r := rs[0]
		rs = rs[1:]
		return r
	}
}

func TestSlotsFireOnTheIntervalWithJitter(t *testing.T) {
	s := newSlots(t0, 10*time.Second, 2*time.Second, 0.5)
	if !s.fire.Equal(t0.Add(time.Second)) {
		t.Errorf("slot 0 fires at %v, want start+1s", s.fire.Sub(t0))
	}
	s.fired(0.25)
	// A run of 3s: no slot fired meanwhile.
	if n := s.ranUntil(t0.Add(4*time.Second), draws()); n != 0 {
		t.Errorf("skipped %d after a short run", n)
	}
	if !s.fire.Equal(t0.Add(10*time.Second + 500*time.Millisecond)) {
		t.Errorf("slot 1 fires at %v, want 10.5s: the schedule does not drift with run times", s.fire.Sub(t0))
	}
}

func TestSlotsThatFireDuringARunAreSkipped(t *testing.T) {
	s := newSlots(t0, 10*time.Second, 0, 0)
	s.fired(0) // slot 0 runs from 0s ...
	// ... to 25s: slots 1 (10s) and 2 (20s) fired meanwhile.
	if n := s.ranUntil(t0.Add(25*time.Second), draws(0, 0)); n != 2 {
		t.Fatalf("skipped %d, want 2", n)
	}
	if !s.fire.Equal(t0.Add(30 * time.Second)) {
		t.Errorf("next slot at %v, want 30s", s.fire.Sub(t0))
	}
	// A slot firing exactly when a run ends is skipped too.
	s.fired(0)
	if n := s.ranUntil(t0.Add(40*time.Second), draws(0)); n != 1 {
		t.Errorf("skipped %d at the boundary, want 1", n)
	}
	// A run now (no slot fired) between slots skips nothing.
	if n := s.ranUntil(t0.Add(45*time.Second), draws()); n != 0 {
		t.Errorf("run now skipped %d", n)
	}
}

// A run that ends after the next slot came due but before that slot's
// jitter made it fire overlaps nothing: the slot runs.
func TestSlotDueButNotYetFiredIsNotSkipped(t *testing.T) {
	s := newSlots(t0, time.Second, time.Second, 0.9) // slot 0 fires at 0.9s
	s.fired(0.5)                                     // slot 1 will fire at 1.5s
	if n := s.ranUntil(t0.Add(1200*time.Millisecond), draws()); n != 0 {
		t.Fatalf("skipped %d: slot 1 came due at 1s but fires at 1.5s, after the run", n)
	}
	if !s.fire.Equal(t0.Add(1500 * time.Millisecond)) {
		t.Errorf("slot 1 fires at %v", s.fire.Sub(t0))
	}
}
