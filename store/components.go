package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Component is an installed component and its last recorded state.
type Component struct {
	Name    string // the key; required
	Version string // installed version
	// Kind is the recipe's metadata.kind ("process" or "plugin"), as text:
	// the store depends on no other KeyStone package.
	Kind string
	// State is the supervisor's state name (RUNNING, BROKEN, …); the store
	// does not interpret it.
	State string
	// Config is the effective configuration as JSON; nil = none.
	Config json.RawMessage
	// Since is when the component entered State; zero = now.
	Since time.Time
	// Restarts counts restarts of this version (the supervisor's count).
	Restarts int
	// LastError is the last failure reported; "" = none.
	LastError string
	// PreviousVersion is the version installed before Version, kept for
	// rollback; "" = none.
	PreviousVersion string
}

const componentColumns = `name, version, kind, state, config, since, restarts, last_error, previous_version`

// UpsertComponent records c, replacing any row with the same name.
func (tx *Tx) UpsertComponent(ctx context.Context, c Component) error {
	if c.Name == "" {
		return fmt.Errorf("upsert component: %w: empty name", ErrInvalid)
	}
	config, err := toJSON("config", c.Config)
	if err != nil {
		return fmt.Errorf("upsert component %s: %w", c.Name, err)
	}
	_, err = tx.q.ExecContext(ctx, `
		INSERT INTO components (`+componentColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET
			version = excluded.version, kind = excluded.kind, state = excluded.state,
			config = excluded.config, since = excluded.since, restarts = excluded.restarts,
			last_error = excluded.last_error, previous_version = excluded.previous_version`,
		c.Name, c.Version, c.Kind, c.State, config, toMillis(tx.stamp(c.Since)),
		c.Restarts, c.LastError, c.PreviousVersion)
	if err != nil {
		return fmt.Errorf("upsert component %s: %w", c.Name, err)
	}
	return nil
}

// GetComponent returns the component called name, or [ErrNotFound].
func (tx *Tx) GetComponent(ctx context.Context, name string) (Component, error) {
	row := tx.q.QueryRowContext(ctx, `SELECT `+componentColumns+` FROM components WHERE name = ?`, name)
	c, err := scanComponent(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Component{}, fmt.Errorf("get component %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Component{}, fmt.Errorf("get component %s: %w", name, err)
	}
	return c, nil
}

// ListComponents returns every component, ordered by name.
func (tx *Tx) ListComponents(ctx context.Context) ([]Component, error) {
	rows, err := tx.q.QueryContext(ctx, `SELECT `+componentColumns+` FROM components ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list components: %w", err)
	}
	defer rows.Close()
	var out []Component
	for rows.Next() {
		c, err := scanComponent(rows)
		if err != nil {
			return nil, fmt.Errorf("list components: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list components: %w", err)
	}
	return out, nil
}

// DeleteComponent removes the component and its plugin state. Deleting a
// component that is not there is not an error. The process record, if any,
// stays until [Tx.ClearProcess], so a process still running is never
// forgotten.
func (tx *Tx) DeleteComponent(ctx context.Context, name string) error {
	if _, err := tx.q.ExecContext(ctx, `DELETE FROM components WHERE name = ?`, name); err != nil {
		return fmt.Errorf("delete component %s: %w", name, err)
	}
	if _, err := tx.q.ExecContext(ctx, `DELETE FROM plugin_state WHERE component = ?`, name); err != nil {
		return fmt.Errorf("delete component %s: plugin state: %w", name, err)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanComponent(sc scanner) (Component, error) {
	var (
		c      Component
		config sql.NullString
		since  int64
	)
	if err := sc.Scan(&c.Name, &c.Version, &c.Kind, &c.State, &config, &since,
		&c.Restarts, &c.LastError, &c.PreviousVersion); err != nil {
		return Component{}, err
	}
	c.Config = fromJSON(config)
	c.Since = fromMillis(since)
	return c, nil
}

// UpsertComponent records c durably, replacing any row with the same name.
func (s *Store) UpsertComponent(ctx context.Context, c Component) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.UpsertComponent(ctx, c) })
}

// GetComponent returns the component called name, or [ErrNotFound].
func (s *Store) GetComponent(ctx context.Context, name string) (Component, error) {
	return s.reader.GetComponent(ctx, name)
}

// ListComponents returns every component, ordered by name.
func (s *Store) ListComponents(ctx context.Context) ([]Component, error) {
	return s.reader.ListComponents(ctx)
}

// DeleteComponent removes the component and its plugin state in one
// transaction; see [Tx.DeleteComponent].
func (s *Store) DeleteComponent(ctx context.Context, name string) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.DeleteComponent(ctx, name) })
}
