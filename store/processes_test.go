package store_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/store"
)

func TestProcessesRoundTrip(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	s, _ := openTemp(t, store.WithClock(clk.Now))

	started := time.Date(2026, 5, 6, 7, 8, 9, 10_000_000, time.UTC)
	a := store.Process{Component: "b.svc", PID: 1234, StartTicks: 987654321, PGID: 1234,
		CgroupPath: "/sys/fs/cgroup/keystone/b.svc", StartedAt: started}
	// start_ticks is a uint64; the top bit must survive a signed column.
	b := store.Process{Component: "a.svc", PID: 77, StartTicks: math.MaxUint64, PGID: 70}
	for _, p := range []store.Process{a, b} {
		if err := s.RecordProcess(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ListProcesses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.StartedAt = clk.Now()
	if want := []store.Process{b, a}; !reflect.DeepEqual(got, want) {
		t.Errorf("ListProcesses =\n%+v\nwant\n%+v", got, want)
	}

	// A restart replaces the record.
	a2 := a
	a2.PID, a2.StartTicks = 5555, 123
	if err := s.RecordProcess(ctx, a2); err != nil {
		t.Fatal(err)
	}
	if err := s.ClearProcess(ctx, "a.svc"); err != nil {
		t.Fatal(err)
	}
	if err := s.ClearProcess(ctx, "never.recorded"); err != nil {
		t.Errorf("ClearProcess of nothing: %v", err)
	}
	got, err = s.ListProcesses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []store.Process{a2}; !reflect.DeepEqual(got, want) {
		t.Errorf("after replace and clear =\n%+v\nwant\n%+v", got, want)
	}

	if err := s.RecordProcess(ctx, store.Process{Component: "x", PID: 0}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("pid 0: err = %v, want ErrInvalid", err)
	}
}

// TestProcessRecordsConcurrently: records written at the same time (they
// share transactions) all land, and an invalid one fails only its caller.
func TestProcessRecordsConcurrently(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	const n = 50
	errs := make(chan error, n+1)
	for i := range n {
		go func() {
			errs <- s.RecordProcess(ctx, store.Process{Component: fmt.Sprintf("c%02d", i), PID: 100 + i})
		}()
	}
	go func() { errs <- s.RecordProcess(ctx, store.Process{Component: "bad", PID: -1}) }()
	invalid := 0
	for range n + 1 {
		if err := <-errs; errors.Is(err, store.ErrInvalid) {
			invalid++
		} else if err != nil {
			t.Error(err)
		}
	}
	if invalid != 1 {
		t.Errorf("%d invalid records refused, want 1", invalid)
	}
	got, err := s.ListProcesses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d records, want %d", len(got), n)
	}
	for i := range n {
		go func() { errs <- s.ClearProcess(ctx, fmt.Sprintf("c%02d", i)) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got, _ := s.ListProcesses(ctx); len(got) != 0 {
		t.Errorf("%d records left after clearing them all", len(got))
	}
}
