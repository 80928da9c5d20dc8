package deploy_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/deploy"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// fakeClock is the only fake in these tests: time moves when the test says.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	armed  chan time.Duration // every AfterFunc's delay, for tests to wait on
}

type fakeTimer struct {
	c       *fakeClock
	at      time.Time
	f       func()
	stopped bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), armed: make(chan time.Duration, 1<<12)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) supervisor.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	select {
	case c.armed <- d:
	default:
	}
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// Advance moves time by d and fires the timers due, in order.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due, keep []*fakeTimer
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.at.After(c.now):
			due = append(due, t)
		default:
			keep = append(keep, t)
		}
	}
	c.timers = keep
	for _, t := range due {
		t.stopped = true
	}
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

// waitArmed returns once a timer of exactly d has been armed.
func (c *fakeClock) waitArmed(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case got := <-c.armed:
			if got == d {
				return
			}
		case <-deadline:
			t.Fatalf("no timer of %s was armed", d)
		}
	}
}

func TestHealthTimeoutIsKeptOnTheClock(t *testing.T) {
	clock := newFakeClock()
	r := newRig(t, func(o *rigOptions) { o.clock = clock })
	comps := []spec{{name: "com.test.sick", version: "1.0.0", health: "cmd:false"}}
	acc, err := r.eng.Submit(context.Background(), r.request(manifest{id: "sick", comps: comps, healthTimeout: "45s"}))
	if err != nil {
		t.Fatal(err)
	}
	clock.waitArmed(t, 45*time.Second)
	r.log.waitFor("sick RUNNING", func(e events.Event) bool {
		return e.Kind == events.KindTransition && e.Component == "com.test.sick" && e.To == "RUNNING"
	})

	// Just before the deadline the deployment still waits, and says for what.
	clock.Advance(45*time.Second - time.Millisecond)
	d, err := r.eng.Get(context.Background(), acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != "IN_PROGRESS" || !strings.Contains(d.WaitingFor, "RUNNING and healthy: com.test.sick (") ||
		d.Since == nil || !d.Since.Equal(clock.Now().Add(-45*time.Second+time.Millisecond)) {
		t.Fatalf("before the deadline: %s waiting for %q since %v", d.Status, d.WaitingFor, d.Since)
	}
	clock.Advance(time.Millisecond)
	d = r.wait(acc.ID)
	if d.Status != "FAILED" || !d.RolledBack || d.ErrorCode != deploy.CodeHealthTimeout ||
		!strings.Contains(d.Error, "health_timeout 45s") {
		t.Fatalf("after the deadline: %s rolled_back=%v %s: %s", d.Status, d.RolledBack, d.ErrorCode, d.Error)
	}
	r.running(map[string]string{}) // rolled back to nothing: the first deployment had no predecessor
}
