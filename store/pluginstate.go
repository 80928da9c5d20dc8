package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// SavePluginState keeps the state document a plugin returned, replacing the
// previous one. state must be JSON; nil or empty is stored as JSON null.
func (tx *Tx) SavePluginState(ctx context.Context, component string, state json.RawMessage) error {
	if component == "" {
		return fmt.Errorf("save plugin state: %w: empty component", ErrInvalid)
	}
	doc, err := toJSON("state", state)
	if err != nil {
		return fmt.Errorf("save plugin state of %s: %w", component, err)
	}
	if !doc.Valid {
		doc = sql.NullString{String: "null", Valid: true}
	}
	_, err = tx.q.ExecContext(ctx, `
		INSERT INTO plugin_state (component, state, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (component) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
		component, doc, toMillis(tx.now()))
	if err != nil {
		return fmt.Errorf("save plugin state of %s: %w", component, err)
	}
	return nil
}

// LoadPluginState returns the state last saved for the plugin, or
// [ErrNotFound] before the first save.
func (tx *Tx) LoadPluginState(ctx context.Context, component string) (json.RawMessage, error) {
	var state string
	err := tx.q.QueryRowContext(ctx, `SELECT state FROM plugin_state WHERE component = ?`, component).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("load plugin state of %s: %w", component, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load plugin state of %s: %w", component, err)
	}
	return json.RawMessage(state), nil
}

// SavePluginState durably keeps the state document a plugin returned.
func (s *Store) SavePluginState(ctx context.Context, component string, state json.RawMessage) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.SavePluginState(ctx, component, state) })
}

// LoadPluginState returns the state last saved for the plugin, or
// [ErrNotFound] before the first save.
func (s *Store) LoadPluginState(ctx context.Context, component string) (json.RawMessage, error) {
	return s.reader.LoadPluginState(ctx, component)
}
