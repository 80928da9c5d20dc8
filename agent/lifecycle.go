package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// ShutdownGrace is how long the shutdown steps still to run when the
// shutdown timeout has passed get, shared out equally: closing the store
// and releasing the lock take milliseconds, and must not be skipped
// because an earlier step overran. A shutdown thus ends within the
// shutdown timeout plus ShutdownGrace, whatever any step does.
const ShutdownGrace = 10 * time.Second

// closers undoes what New and Start started, in reverse order of
// starting. Each step runs even when an earlier one failed or overran; the
// failures are joined.
type closers struct {
	steps []closer
	// grace replaces ShutdownGrace when set (tests).
	grace time.Duration
}

type closer struct {
	what string
	fn   func(context.Context) error
}

// push adds the step that undoes what was just started.
func (c *closers) push(what string, fn func(context.Context) error) {
	c.steps = append(c.steps, closer{what: what, fn: fn})
}

// close runs every step, last pushed first, each under ctx's deadline. A
// step still running at the deadline is abandoned: it may be stuck on
// something that ignores its context, and waiting for it would make the
// shutdown unbounded. Once the deadline has passed, each step left gets
// its own equal share of the grace period.
func (c *closers) close(ctx context.Context, log *slog.Logger) error {
	grace := cmp.Or(c.grace, ShutdownGrace)
	var share time.Duration // set once the deadline has passed
	var errs []error
	for i := len(c.steps) - 1; i >= 0; i-- {
		s := c.steps[i]
		sctx, cancel := ctx, context.CancelFunc(func() {})
		if ctx.Err() != nil {
			if share == 0 {
				share = grace / time.Duration(i+1)
			}
			sctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), share)
		}
		log.Debug("shutdown", "step", s.what)
		err := runStep(sctx, s.fn)
		cancel()
		if err != nil {
			log.Error("shutdown step failed", "step", s.what, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", s.what, err))
		}
	}
	c.steps = nil
	return errors.Join(errs...)
}

// errAbandoned is the error of a shutdown step that overran its deadline.
var errAbandoned = errors.New("abandoned: still running at the shutdown deadline")

// runStep runs fn and waits for it until ctx ends. An abandoned fn goes on
// in its goroutine until it returns or the process exits.
func runStep(ctx context.Context, fn func(context.Context) error) error {
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		select {
		case err := <-done: // finished just as the deadline came
			return err
		default:
			return errAbandoned
		}
	}
}

// goOwned runs fn in a goroutine and returns the function that waits for it
// to end: whoever calls goOwned owns the goroutine and must stop it (through
// whatever fn watches) and wait.
func goOwned(fn func()) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	return func() { <-done }
}
