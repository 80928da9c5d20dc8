package plugins

import "time"

// slots is the pure timing of one schedule: slot k comes due at
// start + k*interval and fires a random part of jitter later, drawn once
// when the slot becomes the next one. A slot whose firing time passes
// while a run is in progress (scheduled or run now) is skipped, never
// queued, so runs never overlap and never pile up.
type slots struct {
	start    time.Time
	interval time.Duration
	jitter   time.Duration
	next     int64     // the next slot to fire
	fire     time.Time // when it fires
}

// newSlots starts a schedule at start; r draws the first slot's jitter.
func newSlots(start time.Time, interval, jitter time.Duration, r float64) slots {
	s := slots{start: start, interval: interval, jitter: jitter}
	s.draw(r)
	return s
}

// due is the time slot k comes due.
func (s *slots) due(k int64) time.Time { return s.start.Add(time.Duration(k) * s.interval) }

// draw sets the firing time of the next slot for a jitter draw r in [0, 1).
func (s *slots) draw(r float64) {
	s.fire = s.due(s.next).Add(time.Duration(r * float64(s.jitter)))
}

// fired moves past the slot that just fired (its run is starting); r
// draws the following slot's jitter.
func (s *slots) fired(r float64) {
	s.next++
	s.draw(r)
}

// ranUntil accounts for a run that ended at end: every slot that fired
// meanwhile (at or before end) is skipped; rand draws the jitter of the
// slots that become next. It returns how many were skipped.
func (s *slots) ranUntil(end time.Time, rand func() float64) int {
	n := 0
	for !s.fire.After(end) {
		s.next++
		s.draw(rand())
		n++
	}
	return n
}
