package agent

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

// A shutdown step that ignores its context is abandoned at the deadline,
// with the error logged and returned; every step after it still runs, each
// under its share of the grace period, so that one hanging after the
// deadline is abandoned too and the steps after it still run.
func TestShutdownStepsRunUnderTheirDeadline(t *testing.T) {
	stuck := make(chan struct{})
	defer close(stuck) // lets the abandoned steps' goroutines end
	var ran []string
	c := closers{grace: 3 * time.Second}
	c.push("close the store", func(context.Context) error { ran = append(ran, "store"); return nil })
	c.push("hang after the deadline", func(context.Context) error { <-stuck; return nil })
	c.push("stop the components", func(ctx context.Context) error {
		ran = append(ran, "components")
		if _, ok := ctx.Deadline(); !ok || ctx.Err() != nil {
			return errors.New("ran without a live deadline")
		}
		return nil
	})
	c.push("stop watching the recipe folder", func(context.Context) error { <-stuck; return nil })

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- c.close(ctx, slog.New(newLogWatch(logs))) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(waitFor):
		t.Fatalf("close did not return within %s: a step ignoring its context held the shutdown", waitFor)
	}
	if !errors.Is(err, errAbandoned) {
		t.Fatalf("close: %v, want the abandoned steps' errors", err)
	}
	for _, step := range []string{"stop watching the recipe folder", "hang after the deadline"} {
		if !strings.Contains(err.Error(), step) || !logs.contains("shutdown step failed", step, "abandoned") {
			t.Errorf("step %q: not reported as abandoned\nerr: %v\nlogs:\n%s", step, err, logs)
		}
	}
	// The steps after the first abandoned one ran, under deadlines of
	// their own, live although the shutdown's had passed.
	if !slices.Equal(ran, []string{"components", "store"}) {
		t.Errorf("steps run after the abandoned ones: %v, want components then store", ran)
	}
}
