package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// SetValue stores value under key, replacing what was there. It is meant
// for small singletons such as a pending self-update checkpoint.
func (tx *Tx) SetValue(ctx context.Context, key string, value []byte) error {
	if key == "" {
		return fmt.Errorf("set value: %w: empty key", ErrInvalid)
	}
	if value == nil {
		value = []byte{}
	}
	if _, err := tx.q.ExecContext(ctx, `
		INSERT INTO kv (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value); err != nil {
		return fmt.Errorf("set value %s: %w", key, err)
	}
	return nil
}

// GetValue returns the value stored under key, or [ErrNotFound].
func (tx *Tx) GetValue(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := tx.q.QueryRowContext(ctx, `SELECT value FROM kv WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get value %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get value %s: %w", key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// DeleteValue removes key. Deleting a key that is not there is not an
// error.
func (tx *Tx) DeleteValue(ctx context.Context, key string) error {
	if _, err := tx.q.ExecContext(ctx, `DELETE FROM kv WHERE key = ?`, key); err != nil {
		return fmt.Errorf("delete value %s: %w", key, err)
	}
	return nil
}

// SetValue durably stores value under key.
func (s *Store) SetValue(ctx context.Context, key string, value []byte) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.SetValue(ctx, key, value) })
}

// GetValue returns the value stored under key, or [ErrNotFound].
func (s *Store) GetValue(ctx context.Context, key string) ([]byte, error) {
	return s.reader.GetValue(ctx, key)
}

// DeleteValue durably removes key.
func (s *Store) DeleteValue(ctx context.Context, key string) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.DeleteValue(ctx, key) })
}
