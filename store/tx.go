package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Tx is one write transaction, handed to the function given to [Store.Tx].
// It has the same methods as [Store]; reads through it see its own
// uncommitted writes. A Tx is valid only inside that function and must not
// be used from other goroutines.
type Tx struct {
	q   querier
	now func() time.Time
}

// Tx runs fn in one write transaction: everything fn does through tx is
// committed together, durably, when fn returns nil, and nothing of it is
// kept when fn returns an error (returned as is) or panics (rolled back, then
// re-panicked). Use it when changes must not be separated, for example a
// job's final status and the outbox message that reports it.
//
// fn must use tx, not the Store: there is one writer connection, and a Store
// write method called inside fn waits for it until ctx ends.
func (s *Store) Tx(ctx context.Context, fn func(tx *Tx) error) (err error) {
	sqlTx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = sqlTx.Rollback()
		}
		if s.ws.hasWanted() { // this transaction has let the writer connection go
			s.ws.prepareWanted(ctx)
		}
	}()
	if err := fn(&Tx{q: cachedTx{Tx: sqlTx, c: s.ws}, now: s.now}); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		committed = true // Commit always ends the transaction
		return fmt.Errorf("commit transaction: %w", err)
	}
	committed = true
	return nil
}

// update runs one Tx method as its own transaction.
func update[T any](ctx context.Context, s *Store, fn func(tx *Tx) (T, error)) (T, error) {
	var out T
	err := s.Tx(ctx, func(tx *Tx) error {
		var err error
		out, err = fn(tx)
		return err
	})
	return out, err
}

// stamp returns t, or the store's clock when t is zero, in UTC.
func (tx *Tx) stamp(t time.Time) time.Time {
	if t.IsZero() {
		t = tx.now()
	}
	return t.UTC()
}

// rowsChanged reports how many rows an UPDATE or DELETE touched.
func rowsChanged(res sql.Result) (int64, error) {
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("rows affected: %w", err)
	}
	return n, nil
}

// changedOrNotFound turns an UPDATE that touched no row into ErrNotFound.
func changedOrNotFound(res sql.Result, what string) error {
	n, err := rowsChanged(res)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}
