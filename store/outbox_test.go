package store_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/keystone-edge/keystone/store"
)

func TestOutboxOrderAckAndSeq(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	s, _ := openTemp(t, store.WithClock(clk.Now))

	msgs := []store.Message{
		{Topic: "keystone/pos-12/jobs/j1/status", Payload: []byte(`{"status":"IN_PROGRESS"}`), QoS: 1},
		{Topic: "keystone/pos-12/state", Payload: []byte(`{"online":true}`), QoS: 1, Retain: true},
		{Topic: "keystone/pos-12/events", Payload: []byte{0, 1, 2, 0xff}, QoS: 0},
	}
	var seqs []int64
	for _, m := range msgs {
		seq, err := s.EnqueueOutbox(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	if !(seqs[0] < seqs[1] && seqs[1] < seqs[2]) {
		t.Fatalf("seqs not increasing: %v", seqs)
	}
	pending, err := s.PendingOutbox(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range msgs {
		msgs[i].Seq, msgs[i].CreatedAt = seqs[i], clk.Now()
	}
	if !reflect.DeepEqual(pending, msgs) {
		t.Errorf("PendingOutbox =\n%+v\nwant\n%+v", pending, msgs)
	}
	if first, _ := s.PendingOutbox(ctx, 2); len(first) != 2 || first[1].Seq != seqs[1] {
		t.Errorf("PendingOutbox(2) = %+v", first)
	}

	// Acking the newest and then enqueuing must not reuse its seq.
	if err := s.AckOutbox(ctx, seqs[2]); err != nil {
		t.Fatal(err)
	}
	if err := s.AckOutbox(ctx, seqs[2]); err != nil {
		t.Errorf("second ack: %v", err)
	}
	next, err := s.EnqueueOutbox(ctx, store.Message{Topic: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if next <= seqs[2] {
		t.Errorf("seq %d reused after ack (last was %d)", next, seqs[2])
	}
	if err := s.AckOutbox(ctx, seqs[0]); err != nil {
		t.Fatal(err)
	}
	n, err := s.OutboxLen(ctx)
	if err != nil || n != 2 {
		t.Errorf("OutboxLen = %d, %v; want 2", n, err)
	}
	pending, _ = s.PendingOutbox(ctx, 0)
	if len(pending) != 2 || pending[0].Seq != seqs[1] || pending[1].Seq != next || pending[1].Payload == nil {
		t.Errorf("after acks = %+v", pending)
	}

	for _, bad := range []store.Message{{Topic: ""}, {Topic: "t", QoS: 3}} {
		if _, err := s.EnqueueOutbox(ctx, bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("EnqueueOutbox(%+v): err = %v, want ErrInvalid", bad, err)
		}
	}
}
