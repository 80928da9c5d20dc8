package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// Event is one recorded happening: a component's state transition,
// deployment progress, a plugin failure.
type Event struct {
	// Seq orders events; set by the store, increasing and never reused, so
	// it is a cursor for following the log across pruning.
	Seq       int64
	At        time.Time // zero = now
	Component string    // "" = not about one component
	Kind      string    // e.g. "state", "deployment"; required
	FromState string    // "" = not a transition
	ToState   string
	Reason    string
	Detail    json.RawMessage // nil = none
}

const eventColumns = `seq, at, component, kind, from_state, to_state, reason, detail`

// AppendEvent records e and returns its seq.
func (tx *Tx) AppendEvent(ctx context.Context, e Event) (int64, error) {
	if e.Kind == "" {
		return 0, fmt.Errorf("append event: %w: empty kind", ErrInvalid)
	}
	detail, err := toJSON("detail", e.Detail)
	if err != nil {
		return 0, fmt.Errorf("append %s event: %w", e.Kind, err)
	}
	res, err := tx.q.ExecContext(ctx, `
		INSERT INTO events (at, component, kind, from_state, to_state, reason, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		toMillis(tx.stamp(e.At)), e.Component, e.Kind, e.FromState, e.ToState, e.Reason, detail)
	if err != nil {
		return 0, fmt.Errorf("append %s event: %w", e.Kind, err)
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("append %s event: seq: %w", e.Kind, err)
	}
	return seq, nil
}

// LastEventSeq is the seq of the newest event kept; 0 when none is.
func (tx *Tx) LastEventSeq(ctx context.Context) (int64, error) {
	var seq sql.NullInt64
	if err := tx.q.QueryRowContext(ctx, `SELECT MAX(seq) FROM events`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("last event seq: %w", err)
	}
	return seq.Int64, nil
}

// Events returns up to limit events with seq greater than afterSeq, in seq
// order; limit <= 0 means all. Start with afterSeq 0.
func (tx *Tx) Events(ctx context.Context, afterSeq int64, limit int) ([]Event, error) {
	return tx.queryEvents(ctx, "events", `
		SELECT `+eventColumns+` FROM events WHERE seq > ? ORDER BY seq LIMIT ?`, afterSeq, sqlLimit(limit))
}

// ComponentEvents returns the latest limit events about one component, in
// seq order; limit <= 0 means all.
func (tx *Tx) ComponentEvents(ctx context.Context, component string, limit int) ([]Event, error) {
	return tx.queryEvents(ctx, "events of "+component, `
		SELECT * FROM (
			SELECT `+eventColumns+` FROM events WHERE component = ? ORDER BY seq DESC LIMIT ?
		) ORDER BY seq`, component, sqlLimit(limit))
}

// PruneEvents deletes all but the newest keep events.
func (tx *Tx) PruneEvents(ctx context.Context, keep int) error {
	if keep < 0 {
		return fmt.Errorf("prune events: %w: keep %d", ErrInvalid, keep)
	}
	if _, err := tx.q.ExecContext(ctx, `
		DELETE FROM events WHERE seq <= coalesce(
			(SELECT seq FROM events ORDER BY seq DESC LIMIT 1 OFFSET ?), 0)`, keep); err != nil {
		return fmt.Errorf("prune events to %d: %w", keep, err)
	}
	return nil
}

func (tx *Tx) queryEvents(ctx context.Context, what, query string, args ...any) ([]Event, error) {
	rows, err := tx.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var (
			e      Event
			at     int64
			detail []byte
		)
		if err := rows.Scan(&e.Seq, &at, &e.Component, &e.Kind, &e.FromState, &e.ToState, &e.Reason, &detail); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		e.At = fromMillis(at)
		if detail != nil {
			e.Detail = json.RawMessage(detail)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// AppendEvent durably records e and returns its seq.
func (s *Store) AppendEvent(ctx context.Context, e Event) (int64, error) {
	return update(ctx, s, func(tx *Tx) (int64, error) { return tx.AppendEvent(ctx, e) })
}

// Events returns up to limit events with seq greater than afterSeq, in seq
// order; limit <= 0 means all.
func (s *Store) Events(ctx context.Context, afterSeq int64, limit int) ([]Event, error) {
	return s.reader.Events(ctx, afterSeq, limit)
}

// ComponentEvents returns the latest limit events about one component, in
// seq order; limit <= 0 means all.
func (s *Store) ComponentEvents(ctx context.Context, component string, limit int) ([]Event, error) {
	return s.reader.ComponentEvents(ctx, component, limit)
}

// LastEventSeq is the seq of the newest event kept; 0 when none is.
func (s *Store) LastEventSeq(ctx context.Context) (int64, error) {
	return s.reader.LastEventSeq(ctx)
}

// PruneEvents durably deletes all but the newest keep events (bounded
// retention). Seqs are not reused afterwards.
func (s *Store) PruneEvents(ctx context.Context, keep int) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.PruneEvents(ctx, keep) })
}
