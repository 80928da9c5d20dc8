package store

import (
	"context"
	"fmt"
	"time"
)

// Message is an outgoing MQTT message waiting in the outbox. Messages are
// delivered in Seq order and removed by [Store.AckOutbox] once the broker
// has them, so none is lost to a broker outage or an agent restart.
type Message struct {
	// Seq orders the outbox; set by the store, increasing and never reused.
	Seq       int64
	Topic     string // required
	Payload   []byte // nil is stored as empty and read back as empty
	QoS       byte   // 0, 1 or 2
	Retain    bool
	CreatedAt time.Time // zero = now
}

// EnqueueOutbox appends m to the outbox and returns its seq.
func (tx *Tx) EnqueueOutbox(ctx context.Context, m Message) (int64, error) {
	if m.Topic == "" || m.QoS > 2 {
		return 0, fmt.Errorf("enqueue message: %w: need a topic and qos 0..2 (got %q, %d)", ErrInvalid, m.Topic, m.QoS)
	}
	payload := m.Payload
	if payload == nil {
		payload = []byte{}
	}
	res, err := tx.q.ExecContext(ctx, `
		INSERT INTO outbox (topic, payload, qos, retain, created_at) VALUES (?, ?, ?, ?, ?)`,
		m.Topic, payload, int(m.QoS), m.Retain, toMillis(tx.stamp(m.CreatedAt)))
	if err != nil {
		return 0, fmt.Errorf("enqueue message to %s: %w", m.Topic, err)
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("enqueue message to %s: seq: %w", m.Topic, err)
	}
	return seq, nil
}

// ReplaceOutbox enqueues m after removing every waiting message to the
// same topic: for a retained state message only the newest matters, so the
// outbox stays bounded however long the broker is away.
func (tx *Tx) ReplaceOutbox(ctx context.Context, m Message) (int64, error) {
	if _, err := tx.q.ExecContext(ctx, `DELETE FROM outbox WHERE topic = ?`, m.Topic); err != nil {
		return 0, fmt.Errorf("replace messages to %s: %w", m.Topic, err)
	}
	return tx.EnqueueOutbox(ctx, m)
}

// PendingOutbox returns up to limit waiting messages in seq order; limit
// <= 0 means all.
func (tx *Tx) PendingOutbox(ctx context.Context, limit int) ([]Message, error) {
	rows, err := tx.q.QueryContext(ctx, `
		SELECT seq, topic, payload, qos, retain, created_at FROM outbox ORDER BY seq LIMIT ?`, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("pending outbox: %w", err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		var (
			m       Message
			qos     int
			created int64
		)
		if err := rows.Scan(&m.Seq, &m.Topic, &m.Payload, &qos, &m.Retain, &created); err != nil {
			return nil, fmt.Errorf("pending outbox: %w", err)
		}
		if m.Payload == nil { // an empty BLOB scans as nil
			m.Payload = []byte{}
		}
		m.QoS = byte(qos)
		m.CreatedAt = fromMillis(created)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pending outbox: %w", err)
	}
	return out, nil
}

// AckOutbox removes the message with that seq once it was delivered.
// Acknowledging a seq that is gone (a second ack after a reconnect) is not
// an error.
func (tx *Tx) AckOutbox(ctx context.Context, seq int64) error {
	if _, err := tx.q.ExecContext(ctx, `DELETE FROM outbox WHERE seq = ?`, seq); err != nil {
		return fmt.Errorf("ack outbox message %d: %w", seq, err)
	}
	return nil
}

// OutboxLen returns how many messages wait in the outbox.
func (tx *Tx) OutboxLen(ctx context.Context) (int, error) {
	var n int
	if err := tx.q.QueryRowContext(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		return 0, fmt.Errorf("outbox length: %w", err)
	}
	return n, nil
}

// EnqueueOutbox durably appends m to the outbox and returns its seq. To
// enqueue together with another change, use [Tx.EnqueueOutbox] in
// [Store.Tx].
func (s *Store) EnqueueOutbox(ctx context.Context, m Message) (int64, error) {
	return update(ctx, s, func(tx *Tx) (int64, error) { return tx.EnqueueOutbox(ctx, m) })
}

// PendingOutbox returns up to limit waiting messages in seq order; limit
// <= 0 means all.
func (s *Store) PendingOutbox(ctx context.Context, limit int) ([]Message, error) {
	return s.reader.PendingOutbox(ctx, limit)
}

// AckOutbox durably removes a delivered message; see [Tx.AckOutbox].
func (s *Store) AckOutbox(ctx context.Context, seq int64) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.AckOutbox(ctx, seq) })
}

// OutboxLen returns how many messages wait in the outbox.
func (s *Store) OutboxLen(ctx context.Context) (int, error) {
	return s.reader.OutboxLen(ctx)
}
