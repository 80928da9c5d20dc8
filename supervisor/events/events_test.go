package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/supervisor/events"
)

func TestBusFansOutAndStamps(t *testing.T) {
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b := events.New(func() time.Time { return fixed })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, c := b.Subscribe(ctx, 4), b.Subscribe(ctx, 4)
	b.Publish(events.Event{Kind: events.KindTransition, Component: "x", From: "NEW", To: "INSTALLED"})
	for _, ch := range []<-chan events.Event{a, c} {
		got := <-ch
		if got.Component != "x" || got.To != "INSTALLED" || !got.At.Equal(fixed) {
			t.Fatalf("got %+v", got)
		}
	}
}

func TestSlowSubscriberLearnsWhatItLost(t *testing.T) {
	b := events.New(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := b.Subscribe(ctx, 1)
	for i := 0; i < 4; i++ {
		b.Publish(events.Event{Kind: events.KindWarning, Reason: "r"})
	}
	first := <-ch
	if first.Dropped != 0 {
		t.Fatalf("first event says dropped=%d", first.Dropped)
	}
	b.Publish(events.Event{Kind: events.KindWarning, Reason: "after"})
	next := <-ch
	if next.Reason != "after" || next.Dropped != 3 {
		t.Fatalf("want the next event to report 3 dropped, got %+v", next)
	}
}

func TestSubscriptionClosesWithContext(t *testing.T) {
	b := events.New(nil)
	ctx, cancel := context.WithCancel(context.Background())
	ch := b.Subscribe(ctx, 1)
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("expected closed channel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after cancel")
	}
	b.Publish(events.Event{Kind: events.KindWarning}) // must not panic on a closed subscriber
}
