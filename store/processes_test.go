package store_test

import (
	"context"
	"errors"
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
