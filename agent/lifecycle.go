package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// closers undoes what Run started, in reverse order of starting. Each step
// runs even when an earlier one failed; the failures are joined.
type closers struct {
	steps []closer
}

type closer struct {
	what string
	fn   func(context.Context) error
}

// push adds the step that undoes what was just started.
func (c *closers) push(what string, fn func(context.Context) error) {
	c.steps = append(c.steps, closer{what: what, fn: fn})
}

// close runs every step, last pushed first, within ctx.
func (c *closers) close(ctx context.Context, log *slog.Logger) error {
	var errs []error
	for i := len(c.steps) - 1; i >= 0; i-- {
		s := c.steps[i]
		log.Debug("shutdown", "step", s.what)
		if err := s.fn(ctx); err != nil {
			log.Error("shutdown step failed", "step", s.what, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", s.what, err))
		}
	}
	c.steps = nil
	return errors.Join(errs...)
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
