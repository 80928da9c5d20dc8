package supervisor

import "time"

// Clock is where actors get time and timers. Tests use a fake one
// (internal/fakeclock).
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc: Stop prevents the call if it has not
// started, and reports false if too late. It is an alias of an unnamed
// interface so that a clock outside this package (a fake in a package that
// may not import supervisor) satisfies Clock by its method set alone.
type Timer = interface{ Stop() bool }

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// AfterFunc is time.AfterFunc.
func (SystemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
