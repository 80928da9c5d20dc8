package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite" // registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

// Store is KeyStone's open database. It is safe for concurrent use; writes
// are serialized on one connection, reads use a pool of read-only
// connections. Create it with [Open] and release it with [Store.Close].
type Store struct {
	path   string
	w      *sql.DB    // the one writer connection (BEGIN IMMEDIATE)
	r      *sql.DB    // read-only connections
	ws, rs *stmtCache // their prepared statements
	reader *Tx        // read methods over r, outside any transaction
	now    func() time.Time
	logger *slog.Logger

	// group batches the writes of process records (grouped).
	group group

	closeOnce sync.Once
	closeErr  error
}

// querier is what both a connection pool and a transaction offer.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Open opens (creating if needed) the database file at path, switches it to
// WAL, applies the embedded migrations it has not seen yet, and checks that
// the file is not from a newer build ([ErrSchemaTooNew]). The folder holding
// path must exist. ctx bounds the opening and the migrations only.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if path == "" || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open store %q: %w: path must be non-empty and contain no '?'", path, ErrInvalid)
	}
	busy := fmt.Sprintf("busy_timeout(%d)", o.busyTimeout.Milliseconds())

	w, err := sql.Open("sqlite", dsn(path, url.Values{
		"_pragma": {busy, "foreign_keys(1)", "journal_mode(WAL)", "synchronous(FULL)", pageCache},
		"_txlock": {"immediate"},
	}))
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	s := &Store{path: path, w: w, now: o.now, logger: o.logger}
	if err := s.checkWAL(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := migrate(ctx, w, migrationFiles, o.logger); err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}

	// Readers open after the writer made the file WAL; journal_mode is
	// persistent, and query_only makes a stray write fail loudly.
	r, err := sql.Open("sqlite", dsn(path, url.Values{
		"_pragma": {busy, "foreign_keys(1)", "query_only(1)", pageCache},
	}))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s: readers: %w", path, err)
	}
	r.SetMaxOpenConns(o.readers)
	r.SetMaxIdleConns(o.readers)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("open store %s: readers: %w", path, err)
	}
	s.r = r
	s.ws, s.rs = newStmtCache(w), newStmtCache(r)
	s.reader = &Tx{q: cachedDB{DB: r, c: s.rs}, now: o.now}
	return s, nil
}

// pageCache bounds each connection's page cache to 64 KiB (SQLite's
// default is 2 MiB). The agent's database is small and mostly read back
// from the kernel's page cache anyway: a reader's cache is dropped whenever
// the writer commits, which the agent does at every process start, so a
// large cache bought nothing but memory. With the default, every connection
// kept a copy of each page it had read, and each page costs SQLite's
// allocator 8 KiB: about 20 KiB of the agent's memory per deployed
// component.
const pageCache = "cache_size(-64)"

// dsn builds a modernc.org/sqlite data source name. The path is not a
// "file:" URI, so it is used verbatim up to the '?'.
func dsn(path string, q url.Values) string {
	return path + "?" + q.Encode()
}

// checkWAL makes sure the writer really runs in WAL with synchronous=FULL:
// SQLite silently keeps the old journal mode where WAL is impossible, and
// durability depends on both.
func (s *Store) checkWAL(ctx context.Context) error {
	var mode string
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal_mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q, want wal", mode)
	}
	var sync int
	if err := s.w.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return fmt.Errorf("read synchronous: %w", err)
	}
	if sync != 2 {
		return fmt.Errorf("synchronous is %d, want 2 (FULL)", sync)
	}
	return nil
}

// Path is the database file the store was opened on.
func (s *Store) Path() string { return s.path }

// Close closes both connection pools. It waits for nothing: callers stop
// their own writers first. Methods called after Close return an error;
// calling Close again returns the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.ws.close()
		s.rs.close()
		err := errors.Join(s.r.Close(), s.w.Close())
		if err != nil {
			s.closeErr = fmt.Errorf("close store %s: %w", s.path, err)
		}
	})
	return s.closeErr
}

// Check runs PRAGMA integrity_check and returns nil when the database is
// sound, or an error wrapping [ErrCorrupt] that says what SQLite found
// (damage so bad that the check itself cannot read a page counts too). It
// reads every page, so it is meant for /healthz at a modest rate and for
// tests, not for hot paths.
func (s *Store) Check(ctx context.Context) error {
	problems, err := s.integrityCheck(ctx)
	if isCorrupt(err) {
		return fmt.Errorf("integrity check: %w: %v", ErrCorrupt, err)
	}
	if err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("integrity check: %w: %s", ErrCorrupt, strings.Join(problems, "; "))
	}
	return nil
}

// integrityCheck returns the lines of PRAGMA integrity_check other than
// "ok".
func (s *Store) integrityCheck(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, err
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	return problems, rows.Err()
}

// isCorrupt reports whether err is SQLite saying the file is damaged or is
// not a database.
func isCorrupt(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff { // primary result code
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return true
	}
	return false
}
