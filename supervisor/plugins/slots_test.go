package plugins

import (
	"testing"
	"time"
)

func TestSlotsFireOnTheIntervalWithJitter(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := slots{start: start, interval: 10 * time.Second, jitter: 2 * time.Second}
	if got := s.fireAt(0.5); !got.Equal(start.Add(time.Second)) {
		t.Errorf("slot 0 fires at %v, want start+1s", got.Sub(start))
	}
	s.fired()
	// A run of 3s: no slot came due.
	if n := s.ranUntil(start.Add(4 * time.Second)); n != 0 {
		t.Errorf("skipped %d after a short run", n)
	}
	if got := s.fireAt(0.25); !got.Equal(start.Add(10*time.Second + 500*time.Millisecond)) {
		t.Errorf("slot 1 fires at %v, want 10.5s: the schedule does not drift with run times", got.Sub(start))
	}
}

func TestSlotsDueDuringARunAreSkipped(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := slots{start: start, interval: 10 * time.Second}
	s.fired() // slot 0 runs from 0s ...
	// ... to 25s: slots 1 (10s) and 2 (20s) came due meanwhile.
	if n := s.ranUntil(start.Add(25 * time.Second)); n != 2 {
		t.Fatalf("skipped %d, want 2", n)
	}
	if got := s.fireAt(0); !got.Equal(start.Add(30 * time.Second)) {
		t.Errorf("next slot at %v, want 30s", got.Sub(start))
	}
	// A slot due exactly when a run ends is skipped too: it came due
	// while the run was still running.
	s.fired()
	if n := s.ranUntil(start.Add(40 * time.Second)); n != 1 {
		t.Errorf("skipped %d at the boundary, want 1", n)
	}
	// A run now (no slot fired) between slots skips nothing.
	if n := s.ranUntil(start.Add(45 * time.Second)); n != 0 {
		t.Errorf("run now skipped %d", n)
	}
}
