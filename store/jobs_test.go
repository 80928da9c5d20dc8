package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/store"
)

func TestJobsIdempotency(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	s, _ := openTemp(t, store.WithClock(clk.Now))

	j := store.Job{ID: "job-1", Kind: "deployment", Status: store.JobQueued}
	if err := s.RecordJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordJob(ctx, j); !errors.Is(err, store.ErrExists) {
		t.Fatalf("job seen twice: err = %v, want ErrExists", err)
	}
	got, err := s.GetJob(ctx, "job-1")
	if err != nil {
		t.Fatal(err)
	}
	want := j
	want.ReceivedAt = clk.Now()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GetJob =\n%+v\nwant\n%+v", got, want)
	}

	if err := s.RecordJob(ctx, store.Job{ID: "job-0", Kind: "cancel", Status: store.JobQueued,
		ReceivedAt: clk.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetJobStatus(ctx, "job-1", store.JobInProgress); err != nil {
		t.Fatal(err)
	}
	unfinished, err := s.UnfinishedJobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(unfinished) != 2 || unfinished[0].ID != "job-0" || unfinished[1].Status != store.JobInProgress {
		t.Errorf("UnfinishedJobs = %+v, want job-0 then job-1 IN_PROGRESS", unfinished)
	}

	final := json.RawMessage(`{"job_id":"job-1","status":"SUCCEEDED","seq":7}`)
	done := clk.Advance(time.Minute)
	if err := s.FinishJob(ctx, "job-1", store.JobSucceeded, final, time.Time{}); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetJob(ctx, "job-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.JobSucceeded || string(got.Final) != string(final) || !got.FinishedAt.Equal(done) {
		t.Errorf("finished job = %+v", got)
	}
	// A job seen again is still refused after it finished, and its final
	// document is what the device answers with.
	if err := s.RecordJob(ctx, j); !errors.Is(err, store.ErrExists) {
		t.Errorf("finished job recorded again: %v", err)
	}
	if unfinished, _ := s.UnfinishedJobs(ctx); len(unfinished) != 1 {
		t.Errorf("UnfinishedJobs after finishing = %+v", unfinished)
	}

	if _, err := s.GetJob(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetJob(missing): err = %v, want ErrNotFound", err)
	}
	if err := s.FinishJob(ctx, "nope", store.JobFailed, nil, time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FinishJob(missing): err = %v, want ErrNotFound", err)
	}
	if err := s.FinishJob(ctx, "job-0", store.JobInProgress, nil, time.Time{}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("FinishJob with a non-final status: err = %v, want ErrInvalid", err)
	}
	if err := s.SetJobStatus(ctx, "job-0", store.JobFailed); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("SetJobStatus with a final status: err = %v, want ErrInvalid", err)
	}
	if err := s.FinishJob(ctx, "job-0", store.JobRejected, json.RawMessage(`{oops`), time.Time{}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("FinishJob with bad JSON: err = %v, want ErrInvalid", err)
	}
}

// A job keeps its document (to run it after a crash) and its creation
// time; the newest accepted one is what staleness is measured against.
func TestJobDocumentsAndTheNewestAcceptedJob(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if newest, err := s.NewestAcceptedJob(ctx); err != nil || !newest.IsZero() {
		t.Fatalf("no jobs: %v, %v", newest, err)
	}
	doc := []byte(`{"job_id":"j1"}`)
	for _, j := range []store.Job{
		{ID: "j1", Kind: "deployment", Status: store.JobQueued, Document: doc, CreatedAt: t0},
		{ID: "j2", Kind: "deployment", Status: store.JobRejected, CreatedAt: t0.Add(time.Hour)},
	} {
		if err := s.RecordJob(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetJob(ctx, "j1")
	if err != nil || string(got.Document) != string(doc) || !got.CreatedAt.Equal(t0) {
		t.Fatalf("j1 = %+v, %v", got, err)
	}
	if newest, _ := s.NewestAcceptedJob(ctx); !newest.Equal(t0) {
		t.Errorf("newest accepted = %v, want %v (a rejected job does not count)", newest, t0)
	}
}

// ReplaceOutbox keeps only the newest message to a topic: a retained state
// coalesces however long the broker is away; other topics are untouched.
func TestReplaceOutboxCoalescesATopic(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	status := store.Message{Topic: "keystone/d/jobs/j1/status", Payload: []byte("s1"), QoS: 1}
	if _, err := s.EnqueueOutbox(ctx, status); err != nil {
		t.Fatal(err)
	}
	var last int64
	for _, p := range []string{"state1", "state2", "state3"} {
		err := s.Tx(ctx, func(tx *store.Tx) error {
			var err error
			last, err = tx.ReplaceOutbox(ctx, store.Message{Topic: "keystone/d/state", Payload: []byte(p), QoS: 1, Retain: true})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	pending, err := s.PendingOutbox(ctx, 0)
	if err != nil || len(pending) != 2 || string(pending[0].Payload) != "s1" || string(pending[1].Payload) != "state3" || pending[1].Seq != last {
		t.Fatalf("pending = %+v, %v", pending, err)
	}
}
