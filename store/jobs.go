package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// JobStatus is where a job stands (the status values jobs and the API report).
type JobStatus string

// Job statuses.
const (
	JobQueued     JobStatus = "QUEUED"
	JobInProgress JobStatus = "IN_PROGRESS"
	JobSucceeded  JobStatus = "SUCCEEDED"
	JobFailed     JobStatus = "FAILED"
	JobRejected   JobStatus = "REJECTED"
	JobCanceled   JobStatus = "CANCELED"
)

// String returns the status as stored and as sent on the wire.
func (s JobStatus) String() string { return string(s) }

// Valid reports whether s is one of the statuses above.
func (s JobStatus) Valid() bool {
	switch s {
	case JobQueued, JobInProgress, JobSucceeded, JobFailed, JobRejected, JobCanceled:
		return true
	}
	return false
}

// Finished reports whether s is a final status.
func (s JobStatus) Finished() bool {
	return s == JobSucceeded || s == JobFailed || s == JobRejected || s == JobCanceled
}

// Job is a job the device has seen, kept so that a job id is run once and
// answered with its recorded final status afterwards.
type Job struct {
	ID     string // job_id; required
	Kind   string // deployment, agent_update, cancel
	Status JobStatus
	// Final is the final status document as JSON; nil until finished.
	Final      json.RawMessage
	ReceivedAt time.Time // zero = now
	FinishedAt time.Time // zero while not finished
	// Document is the job as it came in (its signed JSON); nil for jobs
	// recorded before documents were kept.
	Document []byte
	// CreatedAt is the job's own creation time (from its document); zero
	// when unknown.
	CreatedAt time.Time
}

// RecordJob records a newly received job. A job id seen before gives
// [ErrExists] and changes nothing; answer it from [Tx.GetJob].
func (tx *Tx) RecordJob(ctx context.Context, j Job) error {
	if j.ID == "" {
		return fmt.Errorf("record job: %w: empty id", ErrInvalid)
	}
	if !j.Status.Valid() {
		return fmt.Errorf("record job %s: %w: status %q", j.ID, ErrInvalid, j.Status)
	}
	final, err := toJSON("final", j.Final)
	if err != nil {
		return fmt.Errorf("record job %s: %w", j.ID, err)
	}
	res, err := tx.q.ExecContext(ctx, `
		INSERT INTO jobs (job_id, kind, status, final, received_at, finished_at, document, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (job_id) DO NOTHING`,
		j.ID, j.Kind, string(j.Status), final, toMillis(tx.stamp(j.ReceivedAt)), toNullMillis(j.FinishedAt),
		j.Document, toNullMillis(j.CreatedAt))
	if err != nil {
		return fmt.Errorf("record job %s: %w", j.ID, err)
	}
	n, err := rowsChanged(res)
	if err != nil {
		return fmt.Errorf("record job %s: %w", j.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("record job %s: %w", j.ID, ErrExists)
	}
	return nil
}

// GetJob returns the job with that id, or [ErrNotFound].
func (tx *Tx) GetJob(ctx context.Context, id string) (Job, error) {
	row := tx.q.QueryRowContext(ctx, `
		SELECT `+jobColumns+` FROM jobs WHERE job_id = ?`, id)
	j, err := scanJob(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("get job %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Job{}, fmt.Errorf("get job %s: %w", id, err)
	}
	return j, nil
}

// UnfinishedJobs returns the jobs not yet in a final status, oldest first:
// the ones a restarted agent still has to report on.
func (tx *Tx) UnfinishedJobs(ctx context.Context) ([]Job, error) {
	rows, err := tx.q.QueryContext(ctx, `
		SELECT `+jobColumns+` FROM jobs
		WHERE status IN ('QUEUED', 'IN_PROGRESS') ORDER BY received_at, rowid`)
	if err != nil {
		return nil, fmt.Errorf("unfinished jobs: %w", err)
	}
	defer rows.Close()
	var out []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("unfinished jobs: %w", err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("unfinished jobs: %w", err)
	}
	return out, nil
}

// SetJobStatus records a non-final status change (QUEUED → IN_PROGRESS),
// or returns [ErrNotFound]. Final statuses go through [Tx.FinishJob].
func (tx *Tx) SetJobStatus(ctx context.Context, id string, status JobStatus) error {
	if !status.Valid() || status.Finished() {
		return fmt.Errorf("set job %s status: %w: %q is not a non-final status", id, ErrInvalid, status)
	}
	res, err := tx.q.ExecContext(ctx, `UPDATE jobs SET status = ? WHERE job_id = ?`, string(status), id)
	if err != nil {
		return fmt.Errorf("set job %s status %s: %w", id, status, err)
	}
	return changedOrNotFound(res, fmt.Sprintf("set job %s status %s", id, status))
}

// FinishJob records job id's final status and final status document, or
// returns [ErrNotFound]. A zero at is now.
func (tx *Tx) FinishJob(ctx context.Context, id string, status JobStatus, final json.RawMessage, at time.Time) error {
	if !status.Finished() {
		return fmt.Errorf("finish job %s: %w: %q is not a final status", id, ErrInvalid, status)
	}
	doc, err := toJSON("final", final)
	if err != nil {
		return fmt.Errorf("finish job %s: %w", id, err)
	}
	res, err := tx.q.ExecContext(ctx, `
		UPDATE jobs SET status = ?, final = ?, finished_at = ? WHERE job_id = ?`,
		string(status), doc, toMillis(tx.stamp(at)), id)
	if err != nil {
		return fmt.Errorf("finish job %s as %s: %w", id, status, err)
	}
	return changedOrNotFound(res, fmt.Sprintf("finish job %s as %s", id, status))
}

const jobColumns = `job_id, kind, status, final, received_at, finished_at, document, created_at`

func scanJob(sc scanner) (Job, error) {
	var (
		j        Job
		status   string
		final    sql.NullString
		received int64
		finished sql.NullInt64
		created  sql.NullInt64
	)
	if err := sc.Scan(&j.ID, &j.Kind, &status, &final, &received, &finished, &j.Document, &created); err != nil {
		return Job{}, err
	}
	j.Status = JobStatus(status)
	j.Final = fromJSON(final)
	j.ReceivedAt = fromMillis(received)
	j.FinishedAt = fromNullMillis(finished)
	j.CreatedAt = fromNullMillis(created)
	return j, nil
}

// NewestAcceptedJob returns the latest creation time among the jobs not
// REJECTED; zero when there is none. A job created before it is stale.
func (tx *Tx) NewestAcceptedJob(ctx context.Context) (time.Time, error) {
	var newest sql.NullInt64
	if err := tx.q.QueryRowContext(ctx, `
		SELECT max(created_at) FROM jobs WHERE status != 'REJECTED'`).Scan(&newest); err != nil {
		return time.Time{}, fmt.Errorf("newest accepted job: %w", err)
	}
	return fromNullMillis(newest), nil
}

// RecordJob durably records a newly received job; a job id seen before
// gives [ErrExists].
func (s *Store) RecordJob(ctx context.Context, j Job) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.RecordJob(ctx, j) })
}

// GetJob returns the job with that id, or [ErrNotFound].
func (s *Store) GetJob(ctx context.Context, id string) (Job, error) {
	return s.reader.GetJob(ctx, id)
}

// UnfinishedJobs returns the jobs not yet in a final status, oldest first.
func (s *Store) UnfinishedJobs(ctx context.Context) ([]Job, error) {
	return s.reader.UnfinishedJobs(ctx)
}

// SetJobStatus durably records a non-final status change.
func (s *Store) SetJobStatus(ctx context.Context, id string, status JobStatus) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.SetJobStatus(ctx, id, status) })
}

// FinishJob durably records a job's final status and document. To publish
// that status too, call [Tx.FinishJob] and [Tx.EnqueueOutbox] in one
// [Store.Tx].
func (s *Store) FinishJob(ctx context.Context, id string, status JobStatus, final json.RawMessage, at time.Time) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.FinishJob(ctx, id, status, final, at) })
}

// NewestAcceptedJob returns the latest creation time among the jobs not
// REJECTED; zero when there is none.
func (s *Store) NewestAcceptedJob(ctx context.Context) (time.Time, error) {
	return s.reader.NewestAcceptedJob(ctx)
}
