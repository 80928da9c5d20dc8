package store

import (
	"log/slog"
	"time"
)

// Option changes how [Open] opens the store.
type Option func(*options)

type options struct {
	logger      *slog.Logger
	now         func() time.Time
	busyTimeout time.Duration
	readers     int
}

func defaultOptions() options {
	return options{
		logger:      slog.New(slog.DiscardHandler),
		now:         time.Now,
		busyTimeout: 5 * time.Second,
		readers:     4,
	}
}

// WithLogger sets where the store reports migrations. Without it (or with
// nil) nothing is logged.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithClock sets the clock used for timestamps the caller leaves zero
// (created_at, at, updated_at, …). Without it (or with nil) time.Now is used.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// WithBusyTimeout sets how long a connection waits for a lock held by
// another process before failing with SQLITE_BUSY. Without it (or with
// d <= 0) the wait is 5s. Rounded down to milliseconds.
func WithBusyTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.busyTimeout = d
		}
	}
}

// WithReaders sets the size of the read-only connection pool. Without it
// (or with n <= 0) it is 4. Writes always use one connection.
func WithReaders(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.readers = n
		}
	}
}
