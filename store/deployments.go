package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// DeploymentStatus is where a deployment stands (the status values jobs and the API report).
type DeploymentStatus string

// Deployment statuses.
const (
	DeploymentQueued     DeploymentStatus = "QUEUED"
	DeploymentInProgress DeploymentStatus = "IN_PROGRESS"
	DeploymentSucceeded  DeploymentStatus = "SUCCEEDED"
	DeploymentFailed     DeploymentStatus = "FAILED"
	DeploymentCanceled   DeploymentStatus = "CANCELED"
)

// String returns the status as stored and as sent on the wire.
func (s DeploymentStatus) String() string { return string(s) }

// Valid reports whether s is one of the statuses above.
func (s DeploymentStatus) Valid() bool {
	switch s {
	case DeploymentQueued, DeploymentInProgress, DeploymentSucceeded, DeploymentFailed, DeploymentCanceled:
		return true
	}
	return false
}

// Finished reports whether s is a final status (SUCCEEDED, FAILED, CANCELED).
func (s DeploymentStatus) Finished() bool {
	return s == DeploymentSucceeded || s == DeploymentFailed || s == DeploymentCanceled
}

// Deployment is one recorded deployment. Its steps are read with
// [Store.Steps].
type Deployment struct {
	ID       string // the idempotency key; required
	Manifest string // the manifest's TOML text
	// Recipes holds the recipe TOML text of every component, by name;
	// nil = none.
	Recipes map[string]string
	Status  DeploymentStatus // required
	// RolledBack: a failed deployment restored the previous set.
	RolledBack bool
	Error      string // "" = none
	ErrorCode  string // "" = none
	CreatedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt time.Time // zero while not finished
	// Previous is the component set before this deployment, as JSON in the
	// engine's own shape; nil = not recorded yet.
	Previous json.RawMessage
}

// DeploymentUpdate is a change of a deployment's status.
type DeploymentUpdate struct {
	Status     DeploymentStatus // required
	RolledBack bool
	Error      string
	ErrorCode  string
	// At is when it happened; zero = now. It becomes updated_at, and
	// finished_at when Status is final (finished_at is cleared otherwise).
	At time.Time
	// Previous replaces the recorded previous set; nil leaves it unchanged.
	Previous json.RawMessage
}

const deploymentColumns = `id, manifest, recipes, status, rolled_back, error, error_code,
	created_at, updated_at, finished_at, previous`

// CreateDeployment records a new deployment. A zero CreatedAt is now and a
// zero UpdatedAt is CreatedAt. An id already recorded gives [ErrExists] and
// changes nothing.
func (tx *Tx) CreateDeployment(ctx context.Context, d Deployment) error {
	if d.ID == "" {
		return fmt.Errorf("create deployment: %w: empty id", ErrInvalid)
	}
	if !d.Status.Valid() {
		return fmt.Errorf("create deployment %s: %w: status %q", d.ID, ErrInvalid, d.Status)
	}
	recipes := d.Recipes
	if recipes == nil {
		recipes = map[string]string{}
	}
	recipesJSON, err := json.Marshal(recipes)
	if err != nil {
		return fmt.Errorf("create deployment %s: recipes: %w", d.ID, err)
	}
	previous, err := toJSON("previous", d.Previous)
	if err != nil {
		return fmt.Errorf("create deployment %s: %w", d.ID, err)
	}
	created := tx.stamp(d.CreatedAt)
	updated := d.UpdatedAt
	if updated.IsZero() {
		updated = created
	}
	res, err := tx.q.ExecContext(ctx, `
		INSERT INTO deployments (`+deploymentColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`,
		d.ID, d.Manifest, string(recipesJSON), string(d.Status), d.RolledBack, d.Error, d.ErrorCode,
		toMillis(created), toMillis(updated), toNullMillis(d.FinishedAt), previous)
	if err != nil {
		return fmt.Errorf("create deployment %s: %w", d.ID, err)
	}
	n, err := rowsChanged(res)
	if err != nil {
		return fmt.Errorf("create deployment %s: %w", d.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("create deployment %s: %w", d.ID, ErrExists)
	}
	return nil
}

// GetDeployment returns the deployment with that id, or [ErrNotFound].
func (tx *Tx) GetDeployment(ctx context.Context, id string) (Deployment, error) {
	row := tx.q.QueryRowContext(ctx, `SELECT `+deploymentColumns+` FROM deployments WHERE id = ?`, id)
	d, err := scanDeployment(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Deployment{}, fmt.Errorf("get deployment %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Deployment{}, fmt.Errorf("get deployment %s: %w", id, err)
	}
	return d, nil
}

// ListDeployments returns up to limit deployments, newest first; limit <= 0
// means all.
func (tx *Tx) ListDeployments(ctx context.Context, limit int) ([]Deployment, error) {
	return tx.queryDeployments(ctx, "list deployments", `
		SELECT `+deploymentColumns+` FROM deployments
		ORDER BY created_at DESC, rowid DESC LIMIT ?`, sqlLimit(limit))
}

// UnfinishedDeployments returns the deployments still QUEUED or
// IN_PROGRESS, oldest first: what a restarted agent must resume.
func (tx *Tx) UnfinishedDeployments(ctx context.Context) ([]Deployment, error) {
	return tx.queryDeployments(ctx, "unfinished deployments", `
		SELECT `+deploymentColumns+` FROM deployments
		WHERE status IN ('QUEUED', 'IN_PROGRESS')
		ORDER BY created_at, rowid`)
}

// LastSuccessfulDeployment returns the most recently finished SUCCEEDED
// deployment, or [ErrNotFound] when there is none.
func (tx *Tx) LastSuccessfulDeployment(ctx context.Context) (Deployment, error) {
	row := tx.q.QueryRowContext(ctx, `
		SELECT `+deploymentColumns+` FROM deployments
		WHERE status = 'SUCCEEDED'
		ORDER BY finished_at DESC, rowid DESC LIMIT 1`)
	d, err := scanDeployment(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Deployment{}, fmt.Errorf("last successful deployment: %w", ErrNotFound)
	}
	if err != nil {
		return Deployment{}, fmt.Errorf("last successful deployment: %w", err)
	}
	return d, nil
}

// UpdateDeploymentStatus records a status change of deployment id, or
// returns [ErrNotFound]. The store does not judge the transition; the
// deployment engine does.
func (tx *Tx) UpdateDeploymentStatus(ctx context.Context, id string, u DeploymentUpdate) error {
	if !u.Status.Valid() {
		return fmt.Errorf("update deployment %s: %w: status %q", id, ErrInvalid, u.Status)
	}
	previous, err := toJSON("previous", u.Previous)
	if err != nil {
		return fmt.Errorf("update deployment %s: %w", id, err)
	}
	at := tx.stamp(u.At)
	var finished sql.NullInt64
	if u.Status.Finished() {
		finished = toNullMillis(at)
	}
	res, err := tx.q.ExecContext(ctx, `
		UPDATE deployments SET
			status = ?, rolled_back = ?, error = ?, error_code = ?,
			updated_at = ?, finished_at = ?, previous = coalesce(?, previous)
		WHERE id = ?`,
		string(u.Status), u.RolledBack, u.Error, u.ErrorCode, toMillis(at), finished, previous, id)
	if err != nil {
		return fmt.Errorf("update deployment %s to %s: %w", id, u.Status, err)
	}
	return changedOrNotFound(res, fmt.Sprintf("update deployment %s to %s", id, u.Status))
}

func (tx *Tx) queryDeployments(ctx context.Context, what, query string, args ...any) ([]Deployment, error) {
	rows, err := tx.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []Deployment
	for rows.Next() {
		d, err := scanDeployment(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

func scanDeployment(sc scanner) (Deployment, error) {
	var (
		d                Deployment
		recipes, status  string
		created, updated int64
		finished         sql.NullInt64
		previous         sql.NullString
	)
	if err := sc.Scan(&d.ID, &d.Manifest, &recipes, &status, &d.RolledBack, &d.Error, &d.ErrorCode,
		&created, &updated, &finished, &previous); err != nil {
		return Deployment{}, err
	}
	if err := json.Unmarshal([]byte(recipes), &d.Recipes); err != nil {
		return Deployment{}, fmt.Errorf("deployment %s: recipes column: %w", d.ID, err)
	}
	if len(d.Recipes) == 0 {
		d.Recipes = nil
	}
	d.Status = DeploymentStatus(status)
	d.CreatedAt = fromMillis(created)
	d.UpdatedAt = fromMillis(updated)
	d.FinishedAt = fromNullMillis(finished)
	d.Previous = fromJSON(previous)
	return d, nil
}

// sqlLimit maps "no limit" (n <= 0) onto SQLite's LIMIT -1.
func sqlLimit(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

// CreateDeployment durably records a new deployment; an id already
// recorded gives [ErrExists]. See [Tx.CreateDeployment].
func (s *Store) CreateDeployment(ctx context.Context, d Deployment) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.CreateDeployment(ctx, d) })
}

// GetDeployment returns the deployment with that id, or [ErrNotFound].
func (s *Store) GetDeployment(ctx context.Context, id string) (Deployment, error) {
	return s.reader.GetDeployment(ctx, id)
}

// ListDeployments returns up to limit deployments, newest first; limit <= 0
// means all.
func (s *Store) ListDeployments(ctx context.Context, limit int) ([]Deployment, error) {
	return s.reader.ListDeployments(ctx, limit)
}

// UnfinishedDeployments returns the QUEUED and IN_PROGRESS deployments,
// oldest first.
func (s *Store) UnfinishedDeployments(ctx context.Context) ([]Deployment, error) {
	return s.reader.UnfinishedDeployments(ctx)
}

// LastSuccessfulDeployment returns the most recently finished SUCCEEDED
// deployment, or [ErrNotFound].
func (s *Store) LastSuccessfulDeployment(ctx context.Context) (Deployment, error) {
	return s.reader.LastSuccessfulDeployment(ctx)
}

// UpdateDeploymentStatus durably records a status change; see
// [Tx.UpdateDeploymentStatus].
func (s *Store) UpdateDeploymentStatus(ctx context.Context, id string, u DeploymentUpdate) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.UpdateDeploymentStatus(ctx, id, u) })
}
