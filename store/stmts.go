package store

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps the statements of one connection pool prepared, by their
// text (every query of the store is a constant). A device runs the same few
// statements for every outbox message it sends; preparing each anew
// (SQLite parsing the SQL and planning it) was a fifth of a device's CPU per
// job. The statements are plain database/sql ones: a pool prepares one
// again on each connection that runs it, and a transaction reuses the one
// of its connection.
//
// The writer pool has one connection, held by the transaction that runs a
// query: preparing on the pool then would wait for that connection. So in
// a transaction a query seen for the first time runs unprepared and is
// prepared after the transaction ends (prepareWanted).
type stmtCache struct {
	db     *sql.DB
	mu     sync.Mutex
	m      map[string]*sql.Stmt
	wanted map[string]bool // seen in a transaction, not prepared yet
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}, wanted: map[string]bool{}}
}

// get returns query prepared, or nil when it cannot be: the caller then
// runs it unprepared, which reports the error the same way as before.
func (c *stmtCache) get(ctx context.Context, query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	c.m[query] = st
	return st
}

// inTx returns query prepared, or nil (noting it for prepareWanted) when
// it is not yet.
func (c *stmtCache) inTx(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st
	}
	c.wanted[query] = true
	return nil
}

// prepareWanted prepares the queries transactions ran unprepared; called
// when the calling goroutine's transaction has ended. It holds no lock
// while it prepares: another transaction may hold the connection and look
// its own queries up meanwhile. A query that does not prepare (ctx ended)
// is noted again the next time a transaction runs it.
func (c *stmtCache) prepareWanted(ctx context.Context) {
	c.mu.Lock()
	qs := make([]string, 0, len(c.wanted))
	for q := range c.wanted {
		qs = append(qs, q)
	}
	clear(c.wanted)
	c.mu.Unlock()
	for _, q := range qs {
		st, err := c.db.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if _, dup := c.m[q]; dup {
			_ = st.Close()
		} else {
			c.m[q] = st
		}
		c.mu.Unlock()
	}
}

// hasWanted reports whether prepareWanted has work.
func (c *stmtCache) hasWanted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.wanted) > 0
}

// close closes every statement; before the pool is closed.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		_ = st.Close()
		delete(c.m, q)
	}
	clear(c.wanted)
}

// cachedDB is a pool whose queries run as cached statements.
type cachedDB struct {
	*sql.DB
	c *stmtCache
}

func (d cachedDB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := d.c.get(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return d.DB.ExecContext(ctx, query, args...)
}

func (d cachedDB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := d.c.get(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return d.DB.QueryContext(ctx, query, args...)
}

func (d cachedDB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := d.c.get(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return d.DB.QueryRowContext(ctx, query, args...)
}

// cachedTx is a write transaction whose queries run as the cached
// statements, bound to its connection (closed with the transaction).
type cachedTx struct {
	*sql.Tx
	c *stmtCache
}

func (t cachedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.c.inTx(query); st != nil {
		return t.Tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, query, args...)
}

func (t cachedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.c.inTx(query); st != nil {
		return t.Tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, query, args...)
}

func (t cachedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.c.inTx(query); st != nil {
		return t.Tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}
