package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/store"
)

func TestTxCommitsStatusAndOutboxTogether(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if err := s.RecordJob(ctx, store.Job{ID: "j1", Kind: "deployment", Status: store.JobInProgress}); err != nil {
		t.Fatal(err)
	}
	final := json.RawMessage(`{"job_id":"j1","status":"SUCCEEDED"}`)
	var seq int64
	err := s.Tx(ctx, func(tx *store.Tx) error {
		if err := tx.FinishJob(ctx, "j1", store.JobSucceeded, final, time.Time{}); err != nil {
			return err
		}
		// Reads inside the transaction see its own writes.
		j, err := tx.GetJob(ctx, "j1")
		if err != nil || j.Status != store.JobSucceeded {
			t.Errorf("GetJob inside Tx = %+v, %v", j, err)
		}
		seq, err = tx.EnqueueOutbox(ctx, store.Message{Topic: "keystone/d/jobs/j1/status", Payload: final, QoS: 1})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	j, _ := s.GetJob(ctx, "j1")
	pending, _ := s.PendingOutbox(ctx, 0)
	if j.Status != store.JobSucceeded || len(pending) != 1 || pending[0].Seq != seq {
		t.Errorf("after commit: job %+v, outbox %+v", j, pending)
	}
}

func TestTxRollsBackOnErrorAndPanic(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if err := s.RecordJob(ctx, store.Job{ID: "j1", Kind: "deployment", Status: store.JobInProgress}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("publish plan failed")
	err := s.Tx(ctx, func(tx *store.Tx) error {
		if err := tx.FinishJob(ctx, "j1", store.JobFailed, nil, time.Time{}); err != nil {
			return err
		}
		if _, err := tx.EnqueueOutbox(ctx, store.Message{Topic: "t", QoS: 1}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Tx error = %v, want fn's error returned as is", err)
	}
	assertUntouched := func(when string) {
		t.Helper()
		j, _ := s.GetJob(ctx, "j1")
		n, _ := s.OutboxLen(ctx)
		if j.Status != store.JobInProgress || n != 0 {
			t.Errorf("%s: job %s, outbox %d; want nothing kept", when, j.Status, n)
		}
	}
	assertUntouched("after error")

	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Error("panic inside Tx was swallowed")
			}
		}()
		_ = s.Tx(ctx, func(tx *store.Tx) error {
			if _, err := tx.EnqueueOutbox(ctx, store.Message{Topic: "t", QoS: 1}); err != nil {
				return err
			}
			panic("bug")
		})
	}()
	assertUntouched("after panic")

	// The writer connection was released both times.
	if err := s.SetValue(ctx, "still", []byte("writable")); err != nil {
		t.Errorf("write after rolled-back transactions: %v", err)
	}
}

func TestTxRespectsContext(t *testing.T) {
	s, _ := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	err := s.Tx(ctx, func(tx *store.Tx) error { called = true; return nil })
	if !errors.Is(err, context.Canceled) || called {
		t.Errorf("Tx with a canceled context: err = %v, fn called = %v", err, called)
	}
}
