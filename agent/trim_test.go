package agent

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/internal/fakeclock"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// TestTrimmerTrimsAfterQuietWork: one trim once start-up has been quiet
// for the set time, one more after a burst of deployment events, none
// for transitions alone and none while idle.
func TestTrimmerTrimsAfterQuietWork(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	trims := make(chan struct{}, 8)
	tr := &trimmer{after: 10 * time.Second, clock: clock, log: slog.New(slog.DiscardHandler),
		trim: func(*slog.Logger) { trims <- struct{}{} }}
	sub := make(chan events.Event)
	ctx, cancel := context.WithCancel(context.Background())
	done := goOwned(func() { tr.run(ctx, sub) })
	defer func() { cancel(); done() }()

	expect := func(n int) {
		t.Helper()
		for range n {
			select {
			case <-trims:
			case <-time.After(fakeclock.WaitTimeout):
				t.Fatal("no trim")
			}
		}
		select {
		case <-trims:
			t.Fatal("one trim too many")
		default:
		}
	}
	clock.WaitDelay(t, 10*time.Second)
	clock.Advance(9 * time.Second)
	expect(0)
	clock.Advance(time.Second)
	expect(1) // start-up settled
	if clock.Pending() != 0 {
		t.Fatal("an idle trimmer keeps a timer")
	}
	sub <- events.Event{Kind: events.KindTransition}
	sub <- events.Event{Kind: events.KindDeployment}
	clock.WaitDelay(t, 10*time.Second)
	clock.Advance(5 * time.Second)
	sub <- events.Event{Kind: events.KindDeployment} // the burst goes on: wait again
	sub <- events.Event{Kind: events.KindTransition} // taken: the one before was handled
	clock.Advance(5 * time.Second)
	expect(0)
	clock.Advance(5 * time.Second)
	expect(1)
}

func TestTrimAfterFromEnvironment(t *testing.T) {
	for v, want := range map[string]time.Duration{"": DefaultTrimAfter, "0": 0, "3s": 3 * time.Second} {
		got, err := TrimAfter(func(string) string { return v })
		if err != nil || got != want {
			t.Errorf("%q: got %v, %v; want %v", v, got, err, want)
		}
	}
	if _, err := TrimAfter(func(string) string { return "soon" }); err == nil {
		t.Error("a bad duration is accepted")
	}
}

// TestPageOutExecutable: the test binary's own read-only mappings are
// found and paged out, and the program runs on.
func TestPageOutExecutable(t *testing.T) {
	if err := pageOutExecutable(); err != nil {
		t.Skipf("MADV_PAGEOUT unavailable here: %v", err)
	}
}

// fakeGC records the collector's pauses and resumes.
type fakeGC struct{ log chan string }

func (g fakeGC) pause()  { g.log <- "pause" }
func (g fakeGC) resume() { g.log <- "resume" }

// TestTrimmerPausesTheCollectorWhenQuiet: the collector is paused once the
// agent has been quiet, resumed by any event or API request, and paused
// again after the next quiet time, which trims only after deployments.
func TestTrimmerPausesTheCollectorWhenQuiet(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	gc := fakeGC{log: make(chan string, 16)}
	trims := make(chan struct{}, 8)
	tr := newTrimmer(10*time.Second, clock, slog.New(slog.DiscardHandler), gc)
	tr.trim = func(*slog.Logger) { trims <- struct{}{} }
	sub := make(chan events.Event)
	ctx, cancel := context.WithCancel(context.Background())
	done := goOwned(func() { tr.run(ctx, sub) })

	next := func(want string) {
		t.Helper()
		select {
		case got := <-gc.log:
			if got != want {
				t.Fatalf("collector %s, want %s", got, want)
			}
		case <-time.After(fakeclock.WaitTimeout):
			t.Fatalf("collector not %sd", want)
		}
	}
	clock.WaitDelay(t, 10*time.Second)
	clock.Advance(10 * time.Second)
	next("pause")
	<-trims // start-up
	sub <- events.Event{Kind: events.KindTransition}
	next("resume")
	clock.WaitDelay(t, 10*time.Second)
	clock.Advance(10 * time.Second)
	next("pause")
	tr.poke()
	next("resume")
	clock.WaitDelay(t, 10*time.Second)
	clock.Advance(10 * time.Second)
	next("pause")
	select {
	case <-trims:
		t.Fatal("trimmed after a transition and a request: only deployments call for a trim")
	default:
	}
	cancel()
	done()
	next("resume") // never left paused
}
