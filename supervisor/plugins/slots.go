package plugins

import "time"

// slots is the pure timing of one schedule: slot k is due at
// start + k*interval, and fires a random part of jitter later. A slot
// that comes due while a run is in progress (scheduled or run now) is
// skipped, never queued, so runs never overlap and never pile up.
type slots struct {
	start    time.Time
	interval time.Duration
	jitter   time.Duration
	next     int64 // the next slot to fire
}

// due is the time slot k comes due.
func (s *slots) due(k int64) time.Time { return s.start.Add(time.Duration(k) * s.interval) }

// fireAt is when the next slot fires, for a jitter draw r in [0, 1).
func (s *slots) fireAt(r float64) time.Time {
	return s.due(s.next).Add(time.Duration(r * float64(s.jitter)))
}

// fired moves past the slot that just fired (its run is starting).
func (s *slots) fired() { s.next++ }

// ranUntil accounts for a run that ended at end: every slot that came due
// before end is skipped. It returns how many were.
func (s *slots) ranUntil(end time.Time) int {
	n := 0
	for !s.due(s.next).After(end) {
		s.next++
		n++
	}
	return n
}
