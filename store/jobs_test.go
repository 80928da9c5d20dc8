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
