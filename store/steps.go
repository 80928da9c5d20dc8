package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// StepStatus is how far a deployment step got.
type StepStatus string

// Step statuses.
const (
	StepStarted StepStatus = "started"
	StepDone    StepStatus = "done"
	StepFailed  StepStatus = "failed"
)

// String returns the status as stored and as sent on the wire.
func (s StepStatus) String() string { return string(s) }

// Valid reports whether s is one of the statuses above.
func (s StepStatus) Valid() bool {
	return s == StepStarted || s == StepDone || s == StepFailed
}

// Step is one checkpoint of a deployment. Steps are append-only: a step
// that finishes is a new row with the same Name and status done or failed.
type Step struct {
	DeploymentID string // set by the store on reads
	Seq          int64  // 1, 2, 3, … per deployment; set by the store
	Name         string // what the step does (e.g. "install"); required
	Component    string // the component it concerns; "" = the whole deployment
	Status       StepStatus
	Detail       string    // free text; "" = none
	At           time.Time // zero = now
}

// AppendStep adds a checkpoint to deployment deploymentID and returns its
// seq. The deployment must exist ([ErrNotFound] otherwise); its updated_at
// becomes the step's time. Once the transaction commits the step survives a
// crash or power cut.
func (tx *Tx) AppendStep(ctx context.Context, deploymentID string, st Step) (int64, error) {
	if st.Name == "" || !st.Status.Valid() {
		return 0, fmt.Errorf("append step to %s: %w: need a name and a status (got %q, %q)", deploymentID, ErrInvalid, st.Name, st.Status)
	}
	at := toMillis(tx.stamp(st.At))
	var seq int64
	err := tx.q.QueryRowContext(ctx, `
		SELECT coalesce((SELECT max(seq) FROM steps WHERE deployment_id = ?1), 0) + 1
		FROM deployments WHERE id = ?1`, deploymentID).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("append step %s to %s: %w", st.Name, deploymentID, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("append step %s to %s: %w", st.Name, deploymentID, err)
	}
	if _, err := tx.q.ExecContext(ctx, `
		INSERT INTO steps (deployment_id, seq, name, component, status, detail, at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		deploymentID, seq, st.Name, st.Component, string(st.Status), st.Detail, at); err != nil {
		return 0, fmt.Errorf("append step %s to %s: %w", st.Name, deploymentID, err)
	}
	if _, err := tx.q.ExecContext(ctx, `UPDATE deployments SET updated_at = max(updated_at, ?) WHERE id = ?`,
		at, deploymentID); err != nil {
		return 0, fmt.Errorf("append step %s to %s: touch deployment: %w", st.Name, deploymentID, err)
	}
	return seq, nil
}

// Steps returns the steps of deployment id in seq order; none (and no
// error) when the deployment has no steps or does not exist.
func (tx *Tx) Steps(ctx context.Context, id string) ([]Step, error) {
	rows, err := tx.q.QueryContext(ctx, `
		SELECT deployment_id, seq, name, component, status, detail, at
		FROM steps WHERE deployment_id = ? ORDER BY seq`, id)
	if err != nil {
		return nil, fmt.Errorf("steps of %s: %w", id, err)
	}
	defer rows.Close()
	var out []Step
	for rows.Next() {
		var (
			st     Step
			status string
			at     int64
		)
		if err := rows.Scan(&st.DeploymentID, &st.Seq, &st.Name, &st.Component, &status, &st.Detail, &at); err != nil {
			return nil, fmt.Errorf("steps of %s: %w", id, err)
		}
		st.Status = StepStatus(status)
		st.At = fromMillis(at)
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("steps of %s: %w", id, err)
	}
	return out, nil
}

// AppendStep durably adds a checkpoint to a deployment and returns its
// seq: when it returns nil the step survives a crash or power cut.
func (s *Store) AppendStep(ctx context.Context, deploymentID string, st Step) (int64, error) {
	return update(ctx, s, func(tx *Tx) (int64, error) { return tx.AppendStep(ctx, deploymentID, st) })
}

// Steps returns the steps of deployment id in seq order.
func (s *Store) Steps(ctx context.Context, id string) ([]Step, error) {
	return s.reader.Steps(ctx, id)
}
