package fakeclock_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/internal/fakeclock"
)

// A *Clock is a clock of the shape supervisor.Clock declares (with its
// Timer an alias of the unnamed interface), without importing supervisor.
var _ interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) interface{ Stop() bool }
} = (*fakeclock.Clock)(nil)

func TestAdvanceFiresDueTimersInOrder(t *testing.T) {
	c := fakeclock.New(time.Time{})
	if !c.Now().Equal(fakeclock.Default) {
		t.Fatalf("New(zero) starts at %v", c.Now())
	}
	var fired []string
	at := func(name string) func() {
		return func() { fired = append(fired, fmt.Sprintf("%s@%s", name, c.Now().Sub(fakeclock.Default))) }
	}
	c.AfterFunc(3*time.Second, at("c"))
	c.AfterFunc(time.Second, at("a"))
	c.AfterFunc(time.Second, at("b")) // due with a: after it, as armed
	c.AfterFunc(5*time.Second, at("later"))
	if n := c.Pending(); n != 4 {
		t.Fatalf("Pending = %d, want 4", n)
	}
	if d, ok := c.Next(); !ok || d != time.Second {
		t.Fatalf("Next = %v, %v", d, ok)
	}
	if now := c.Advance(999 * time.Millisecond); !now.Equal(fakeclock.Default.Add(999 * time.Millisecond)) {
		t.Fatalf("Advance returned %v", now)
	}
	if len(fired) != 0 {
		t.Fatalf("fired early: %v", fired)
	}
	c.Advance(3 * time.Second)
	if got, want := strings.Join(fired, " "), "a@3.999s b@3.999s c@3.999s"; got != want {
		t.Fatalf("fired %q, want %q", got, want)
	}
	if n := c.Pending(); n != 1 {
		t.Fatalf("Pending = %d after firing, want 1", n)
	}
}

func TestStopAndSet(t *testing.T) {
	start := time.Date(2030, 5, 1, 0, 0, 0, 0, time.UTC)
	c := fakeclock.New(start)
	fired := false
	tm := c.AfterFunc(time.Minute, func() { fired = true })
	if !tm.Stop() {
		t.Fatal("Stop of a pending timer = false")
	}
	if tm.Stop() {
		t.Fatal("second Stop = true")
	}
	c.Advance(time.Hour)
	if fired || c.Pending() != 0 {
		t.Fatalf("a stopped timer fired (%v) or is pending (%d)", fired, c.Pending())
	}

	once := c.AfterFunc(0, func() { fired = true })
	if fired {
		t.Fatal("a zero-delay timer fired before the clock moved")
	}
	c.Set(start) // back in time: nothing is due
	if fired {
		t.Fatal("fired when the clock moved back")
	}
	c.Set(start.Add(2 * time.Hour))
	if !fired || !c.Now().Equal(start.Add(2*time.Hour)) {
		t.Fatalf("Set: fired %v, now %v", fired, c.Now())
	}
	if once.Stop() {
		t.Fatal("Stop after firing = true")
	}
}

func TestCallbackMayUseTheClock(t *testing.T) {
	c := fakeclock.New(time.Time{})
	var ticks int
	var tick func()
	tick = func() {
		ticks++
		c.AfterFunc(time.Second, tick) // re-arms: fires at a later move
	}
	c.AfterFunc(time.Second, tick)
	c.Advance(10 * time.Second)
	if ticks != 1 {
		t.Fatalf("ticks = %d after one move, want 1", ticks)
	}
	c.Advance(time.Second)
	if ticks != 2 {
		t.Fatalf("ticks = %d after two moves, want 2", ticks)
	}
}

func TestWaitsSeeTimersArmedElsewhere(t *testing.T) {
	c := fakeclock.New(time.Time{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.AfterFunc(2*time.Second, func() {})
		c.AfterFunc(45*time.Second, func() {})
	}()
	c.WaitArmed(t, 2)
	c.WaitDelay(t, 45*time.Second)
	if d := c.WaitNext(t); d != 2*time.Second {
		t.Fatalf("WaitNext = %v, want 2s", d)
	}
	wg.Wait()
}

// fatalTB records a failed wait instead of ending the test.
type fatalTB struct{ msgs []string }

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
}

func TestWaitReturnsAtOnceWhenAlreadyTrue(t *testing.T) {
	c := fakeclock.New(time.Time{})
	c.AfterFunc(time.Second, func() {})
	tb := &fatalTB{}
	c.WaitArmed(tb, 1)
	c.WaitDelay(tb, time.Second)
	c.WaitArmed(tb, 0)
	if len(tb.msgs) != 0 {
		t.Fatalf("waits failed: %v", tb.msgs)
	}
}
