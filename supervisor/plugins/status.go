package plugins

import "time"

// Status is what a plugin's schedule has done so far: a value, never
// changed after it is returned.
type Status struct {
	// Runs counts the runs that ran (ok or failed), scheduled or run now.
	Runs uint64
	// Failures counts the runs that failed.
	Failures uint64
	// Skipped counts the slots that came due while a run still ran.
	Skipped uint64
	// ConsecutiveFailures counts the failures since the last good run; 0
	// after a good run.
	ConsecutiveFailures int
	// LastError says why the last failed run failed (with the end of the
	// plugin's stderr); "" before the first failure. It is kept after a good
	// run, so that a flapping plugin still shows why it failed.
	LastError string
	// LastRun is when the last run ended; zero before the first.
	LastRun time.Time
	// LastSuccess is when the last good run ended; zero before the first.
	LastSuccess time.Time
	// LastDuration is how long the last run took.
	LastDuration time.Duration
}

// Failing reports whether the last run failed.
func (s Status) Failing() bool { return s.ConsecutiveFailures > 0 }
