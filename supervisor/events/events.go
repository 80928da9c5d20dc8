// Package events is KeyStone's in-process event bus: every state change,
// deployment step and warning is published here once, and the store, the
// local API, MQTT and metrics each subscribe.
//
// Producers see only Publish; they never call consumers directly. The bus
// never blocks a producer: a subscriber that falls behind loses events, and
// the next event it does receive says how many it lost.
package events

import (
	"context"
	"sync"
	"time"
)

// Kind says what an event is about.
type Kind string

const (
	// KindTransition: a component moved from one state to another.
	KindTransition Kind = "transition"
	// KindDeployment: a deployment changed status or finished a step.
	KindDeployment Kind = "deployment"
	// KindWarning: something the operator should see that is not a state
	// change (a resource limit that could not be applied, a dropped log).
	KindWarning Kind = "warning"
	// KindPlugin: a plugin run finished.
	KindPlugin Kind = "plugin"
	// KindAgentUpdate: the agent's update of itself changed phase.
	KindAgentUpdate Kind = "agent_update"
)

// Event is one thing that happened. The zero value of every field but Kind
// means "not applicable".
type Event struct {
	At         time.Time         `json:"ts"`
	Kind       Kind              `json:"kind"`
	Component  string            `json:"component,omitempty"`
	From       string            `json:"from,omitempty"`
	To         string            `json:"to,omitempty"`
	Reason     string            `json:"reason,omitempty"`
	Deployment string            `json:"deployment,omitempty"`
	Step       string            `json:"step,omitempty"`
	Detail     map[string]string `json:"detail,omitempty"`
	// Dropped counts events this subscriber lost just before this one
	// because it fell behind. It is set per subscriber, on delivery.
	Dropped uint64 `json:"dropped,omitempty"`
}

// Publisher is what producers need: one method.
type Publisher interface {
	Publish(Event)
}

// Bus fans events out to subscribers. The zero value is not usable; call New.
type Bus struct {
	now  func() time.Time
	mu   sync.Mutex
	subs map[*subscription]struct{}
}

type subscription struct {
	ch      chan Event
	dropped uint64
}

// New returns a bus that stamps events with now() when they have no time.
// A nil now means time.Now.
func New(now func() time.Time) *Bus {
	if now == nil {
		now = time.Now
	}
	return &Bus{now: now, subs: make(map[*subscription]struct{})}
}

// Publish delivers e to every subscriber without blocking.
func (b *Bus) Publish(e Event) {
	if e.At.IsZero() {
		e.At = b.now()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		ev := e
		ev.Dropped = s.dropped
		select {
		case s.ch <- ev:
			s.dropped = 0
		default:
			s.dropped++
		}
	}
}

// Subscribe returns a channel receiving every event published from now on,
// buffered to hold buffer events (at least 1). The channel is closed once
// ctx is done; the subscriber must keep reading until then or lose events.
func (b *Bus) Subscribe(ctx context.Context, buffer int) <-chan Event {
	if buffer < 1 {
		buffer = 1
	}
	s := &subscription{ch: make(chan Event, buffer)}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	context.AfterFunc(ctx, func() {
		b.mu.Lock()
		delete(b.subs, s)
		close(s.ch)
		b.mu.Unlock()
	})
	return s.ch
}

// Discard is a Publisher that drops every event, for callers with no bus.
var Discard Publisher = discard{}

type discard struct{}

func (discard) Publish(Event) {}
