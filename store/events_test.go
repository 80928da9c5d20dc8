package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/store"
)

func TestEventsFollowAndPrune(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	s, _ := openTemp(t, store.WithClock(clk.Now))
	if last, err := s.LastEventSeq(ctx); err != nil || last != 0 {
		t.Fatalf("LastEventSeq of no event = %d, %v; want 0", last, err)
	}

	first := store.Event{Component: "com.example.hello", Kind: "state", FromState: "STARTING", ToState: "RUNNING",
		Reason: "started", Detail: json.RawMessage(`{"pid":42}`), At: time.Date(2026, 1, 1, 0, 0, 0, 1_000_000, time.UTC)}
	seq1, err := s.AppendEvent(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Events(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	first.Seq = seq1
	if want := []store.Event{first}; !reflect.DeepEqual(got, want) {
		t.Errorf("Events =\n%+v\nwant\n%+v", got, want)
	}

	var seqs []int64
	for i := range 9 {
		comp := "a"
		if i%3 == 0 {
			comp = "b"
		}
		seq, err := s.AppendEvent(ctx, store.Event{Component: comp, Kind: "state", ToState: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	// Following: a page after a cursor.
	page, err := s.Events(ctx, seqs[2], 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 3 || page[0].Seq != seqs[3] || page[2].Seq != seqs[5] {
		t.Errorf("Events(after %d, 3) = %+v", seqs[2], page)
	}
	// The latest 2 events of b, oldest first.
	bs, err := s.ComponentEvents(ctx, "b", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 || bs[0].ToState != "3" || bs[1].ToState != "6" {
		t.Errorf("ComponentEvents(b, 2) = %+v; want states 3 then 6", bs)
	}

	// Keep the newest 4; seqs are not reused afterwards.
	if err := s.PruneEvents(ctx, 4); err != nil {
		t.Fatal(err)
	}
	left, _ := s.Events(ctx, 0, 0)
	if len(left) != 4 || left[0].Seq != seqs[5] || left[3].Seq != seqs[8] {
		t.Errorf("after PruneEvents(4) = %+v", left)
	}
	if last, err := s.LastEventSeq(ctx); err != nil || last != seqs[8] {
		t.Errorf("LastEventSeq = %d, %v; want %d", last, err, seqs[8])
	}
	if err := s.PruneEvents(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if left, _ := s.Events(ctx, 0, 0); len(left) != 4 {
		t.Errorf("PruneEvents(100) removed events: %d left", len(left))
	}
	if err := s.PruneEvents(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if left, _ := s.Events(ctx, 0, 0); len(left) != 0 {
		t.Errorf("PruneEvents(0) left %d", len(left))
	}
	next, err := s.AppendEvent(ctx, store.Event{Kind: "state"})
	if err != nil || next <= seqs[8] {
		t.Errorf("seq after pruning everything = %d, %v; want > %d", next, err, seqs[8])
	}

	if err := s.PruneEvents(ctx, -1); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("PruneEvents(-1): err = %v, want ErrInvalid", err)
	}
	if _, err := s.AppendEvent(ctx, store.Event{}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("event without kind: err = %v, want ErrInvalid", err)
	}
}
