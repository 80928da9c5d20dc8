// Package fakeclock is the one fake clock of KeyStone's tests: time moves
// only when the test says (Advance, Set), and timers fire then. A *Clock
// satisfies supervisor.Clock and any Now-only clock (store, ota, the plugin
// exporter) structurally.
//
// It imports nothing from the project, so that every package's tests can
// use it, and nothing of package testing: its waits take the two methods
// they need of a testing.TB. It never sleeps: a wait blocks on a channel
// that AfterFunc and Stop signal, with a wall-clock deadline only to fail
// a test that would otherwise hang. It is for tests only.
package fakeclock

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// WaitTimeout is how long the Wait methods wait before failing the test.
const WaitTimeout = time.Minute

// Default is the time New starts at when given the zero time.
var Default = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// TB is what the Wait methods need of a *testing.T or *testing.B.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Clock is a fake clock, safe for concurrent use. The zero value is a
// clock at the zero time with no timers; New starts it elsewhere.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	seq     uint64        // arming order, to fire timers due together in order
	timers  []*timer      // pending timers
	changed chan struct{} // closed and replaced when the timers change; nil until needed
}

type timer struct {
	c     *Clock
	at    time.Time
	delay time.Duration
	seq   uint64
	f     func()
	done  bool // fired or stopped
}

// New returns a clock at start (Default when start is zero).
func New(start time.Time) *Clock {
	if start.IsZero() {
		start = Default
	}
	return &Clock{now: start}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc arms a timer that calls f once the clock has moved by d (at the
// next Advance or Set that reaches it, even when d <= 0). f is called in
// the goroutine that moves the clock, not in its own: a callback that
// blocks blocks Advance. The result's Stop cancels the call; it reports
// whether the timer was still pending.
func (c *Clock) AfterFunc(d time.Duration, f func()) interface{ Stop() bool } {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &timer{c: c, at: c.now.Add(d), delay: d, seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	c.signal()
	return t
}

// Stop cancels the timer; false if it already fired or was stopped.
func (t *timer) Stop() bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.done {
		return false
	}
	t.done = true
	c.timers = slices.DeleteFunc(c.timers, func(o *timer) bool { return o == t })
	c.signal()
	return true
}

// Advance moves the clock by d, fires the timers due (see Set) and returns
// the new time.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	to := c.now.Add(d)
	c.mu.Unlock()
	c.Set(to)
	return to
}

// Set moves the clock to t, then calls every timer due by t, earliest
// first (timers due together in the order they were armed), in the
// calling goroutine, before returning. A timer armed by a callback fires
// at a later move. Set may move the clock back; nothing fires then.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	var due []*timer
	c.timers = slices.DeleteFunc(c.timers, func(tm *timer) bool {
		if tm.at.After(t) {
			return false
		}
		tm.done = true
		due = append(due, tm)
		return true
	})
	if len(due) > 0 {
		c.signal()
	}
	c.mu.Unlock()
	slices.SortStableFunc(due, func(a, b *timer) int {
		if n := a.at.Compare(b.at); n != 0 {
			return n
		}
		return cmp.Compare(a.seq, b.seq)
	})
	for _, tm := range due {
		tm.f()
	}
}

// Pending returns how many timers are armed and have neither fired nor
// been stopped.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Next returns how long until the earliest pending timer is due (0 or less
// when it is due already); false when none is pending.
func (c *Clock) Next() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.next()
}

func (c *Clock) next() (time.Duration, bool) {
	if len(c.timers) == 0 {
		return 0, false
	}
	at := c.timers[0].at
	for _, t := range c.timers[1:] {
		if t.at.Before(at) {
			at = t.at
		}
	}
	return at.Sub(c.now), true
}

// WaitArmed waits until at least n timers are pending.
func (c *Clock) WaitArmed(tb TB, n int) {
	tb.Helper()
	if !c.wait(func() bool { return len(c.timers) >= n }) {
		tb.Fatalf("fakeclock: no %d timers armed within %s (have %d)", n, WaitTimeout, c.Pending())
	}
}

// WaitNext waits until a timer is pending and returns how long until the
// earliest one is due, as Next.
func (c *Clock) WaitNext(tb TB) time.Duration {
	tb.Helper()
	var d time.Duration
	ok := c.wait(func() bool {
		var ok bool
		d, ok = c.next()
		return ok
	})
	if !ok {
		tb.Fatalf("fakeclock: no timer armed within %s", WaitTimeout)
	}
	return d
}

// WaitDelay waits until a timer armed with a delay of exactly d is pending.
func (c *Clock) WaitDelay(tb TB, d time.Duration) {
	tb.Helper()
	ok := c.wait(func() bool {
		return slices.ContainsFunc(c.timers, func(t *timer) bool { return t.delay == d })
	})
	if !ok {
		tb.Fatalf("fakeclock: no timer of %s armed within %s", d, WaitTimeout)
	}
}

// wait waits until cond, called with c.mu held, is true; false when
// WaitTimeout passed first.
func (c *Clock) wait(cond func() bool) bool {
	deadline := time.NewTimer(WaitTimeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		if cond() {
			c.mu.Unlock()
			return true
		}
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

// signal wakes the waits; c.mu is held.
func (c *Clock) signal() {
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}
