package store

import (
	"context"
	"fmt"
	"time"
)

// Artifact is one entry of the artifact cache index; the bytes live in
// data_dir/artifacts/<SHA256>, owned by the ota package.
type Artifact struct {
	SHA256    string    // 64 lowercase hex; the key
	Size      int64     // bytes, >= 0
	CreatedAt time.Time // set on first Put; zero = LastUsed
	LastUsed  time.Time // zero = now
}

// isSHA256Hex reports whether s is 64 lowercase hex digits.
func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// PutArtifact records a, replacing its size and last use if the digest is
// already known (its creation time is kept).
func (tx *Tx) PutArtifact(ctx context.Context, a Artifact) error {
	if !isSHA256Hex(a.SHA256) || a.Size < 0 {
		return fmt.Errorf("put artifact %q: %w: need 64 lowercase hex digits and a size >= 0", a.SHA256, ErrInvalid)
	}
	used := tx.stamp(a.LastUsed)
	created := a.CreatedAt
	if created.IsZero() {
		created = used
	}
	_, err := tx.q.ExecContext(ctx, `
		INSERT INTO artifacts (sha256, size, created_at, last_used) VALUES (?, ?, ?, ?)
		ON CONFLICT (sha256) DO UPDATE SET size = excluded.size, last_used = excluded.last_used`,
		a.SHA256, a.Size, toMillis(created), toMillis(used))
	if err != nil {
		return fmt.Errorf("put artifact %s: %w", a.SHA256, err)
	}
	return nil
}

// TouchArtifact records a use of the artifact at at (zero = now), or
// returns [ErrNotFound].
func (tx *Tx) TouchArtifact(ctx context.Context, sha256 string, at time.Time) error {
	res, err := tx.q.ExecContext(ctx, `UPDATE artifacts SET last_used = ? WHERE sha256 = ?`,
		toMillis(tx.stamp(at)), sha256)
	if err != nil {
		return fmt.Errorf("touch artifact %s: %w", sha256, err)
	}
	return changedOrNotFound(res, "touch artifact "+sha256)
}

// ListArtifacts returns the index, least recently used first (the order
// the cache evicts in).
func (tx *Tx) ListArtifacts(ctx context.Context) ([]Artifact, error) {
	rows, err := tx.q.QueryContext(ctx, `
		SELECT sha256, size, created_at, last_used FROM artifacts ORDER BY last_used, sha256`)
	if err != nil {
		return nil, fmt.Errorf("list artifacts: %w", err)
	}
	defer rows.Close()
	var out []Artifact
	for rows.Next() {
		var (
			a             Artifact
			created, used int64
		)
		if err := rows.Scan(&a.SHA256, &a.Size, &created, &used); err != nil {
			return nil, fmt.Errorf("list artifacts: %w", err)
		}
		a.CreatedAt = fromMillis(created)
		a.LastUsed = fromMillis(used)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list artifacts: %w", err)
	}
	return out, nil
}

// DeleteArtifact removes the artifact from the index. Deleting one that is
// not there is not an error.
func (tx *Tx) DeleteArtifact(ctx context.Context, sha256 string) error {
	if _, err := tx.q.ExecContext(ctx, `DELETE FROM artifacts WHERE sha256 = ?`, sha256); err != nil {
		return fmt.Errorf("delete artifact %s: %w", sha256, err)
	}
	return nil
}

// PutArtifact durably records an artifact; see [Tx.PutArtifact].
func (s *Store) PutArtifact(ctx context.Context, a Artifact) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.PutArtifact(ctx, a) })
}

// TouchArtifact durably records a use of the artifact, or returns
// [ErrNotFound].
func (s *Store) TouchArtifact(ctx context.Context, sha256 string, at time.Time) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.TouchArtifact(ctx, sha256, at) })
}

// ListArtifacts returns the index, least recently used first.
func (s *Store) ListArtifacts(ctx context.Context) ([]Artifact, error) {
	return s.reader.ListArtifacts(ctx)
}

// DeleteArtifact durably removes the artifact from the index.
func (s *Store) DeleteArtifact(ctx context.Context, sha256 string) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.DeleteArtifact(ctx, sha256) })
}
