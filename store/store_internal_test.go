package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConnectionSettings(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "k.db"), WithBusyTimeout(1500*time.Millisecond), WithReaders(3))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	pragma := func(db *sql.DB, name string) string {
		t.Helper()
		var v string
		if err := db.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v); err != nil {
			t.Fatalf("PRAGMA %s: %v", name, err)
		}
		return v
	}
	writer := map[string]string{
		"journal_mode": "wal",
		"synchronous":  "2", // FULL: a commit is on disk when Commit returns
		"foreign_keys": "1",
		"busy_timeout": "1500",
		"query_only":   "0",
		"cache_size":   "-64", // KiB: the default 2 MiB per connection grew with every component
	}
	for name, want := range writer {
		if got := pragma(s.w, name); got != want {
			t.Errorf("writer PRAGMA %s = %s, want %s", name, got, want)
		}
	}
	reader := map[string]string{"foreign_keys": "1", "busy_timeout": "1500", "query_only": "1", "cache_size": "-64"}
	for name, want := range reader {
		if got := pragma(s.r, name); got != want {
			t.Errorf("reader PRAGMA %s = %s, want %s", name, got, want)
		}
	}
	if got := s.w.Stats().MaxOpenConnections; got != 1 {
		t.Errorf("writer pool allows %d connections, want 1", got)
	}
	if got := s.r.Stats().MaxOpenConnections; got != 3 {
		t.Errorf("reader pool allows %d connections, want 3", got)
	}
	// The reader pool refuses writes.
	if _, err := s.r.ExecContext(ctx, "INSERT INTO kv (key, value) VALUES ('x', x'00')"); err == nil ||
		!strings.Contains(err.Error(), "readonly") {
		t.Errorf("write through a reader: err = %v, want a read-only error", err)
	}
	// Store read methods go through the reader pool.
	if c, ok := s.reader.q.(cachedDB); !ok || c.DB != s.r || c.c.db != s.r {
		t.Error("Store reads do not use the reader pool")
	}
}

// TestStatementsStayPrepared: the queries a device repeats for every
// outbox message are prepared once, on the writer inside transactions too,
// and a transaction that ran a query unprepared leaves the writer free.
func TestStatementsStayPrepared(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "k.db"), WithReaders(1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 3 {
		seq, err := s.EnqueueOutbox(ctx, Message{Topic: "t", Payload: []byte{byte(i)}, QoS: 1})
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := s.PendingOutbox(ctx, 1)
		if err != nil || len(msgs) != 1 || msgs[0].Seq != seq {
			t.Fatalf("pending %v, %v; want seq %d", msgs, err, seq)
		}
		if err := s.AckOutbox(ctx, seq); err != nil {
			t.Fatal(err)
		}
	}
	s.ws.mu.Lock()
	nw, wanted := len(s.ws.m), len(s.ws.wanted)
	s.ws.mu.Unlock()
	s.rs.mu.Lock()
	nr := len(s.rs.m)
	s.rs.mu.Unlock()
	if nw < 2 || wanted != 0 || nr < 1 {
		t.Errorf("%d writer statements prepared (%d still wanted), %d reader ones; want the enqueue and ack ones, the pending one", nw, wanted, nr)
	}
	if n, err := s.OutboxLen(ctx); err != nil || n != 0 {
		t.Errorf("outbox length %d, %v; want 0", n, err)
	}
}

func TestWriterTransactionsBeginImmediate(t *testing.T) {
	// With BEGIN IMMEDIATE the write lock is taken at BEGIN, so a second
	// process's writer waits for busy_timeout and fails at BEGIN instead of
	// deadlocking at its first write after reading.
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "k.db")
	a, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, path, WithBusyTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	entered := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- a.Tx(ctx, func(tx *Tx) error {
			close(entered)
			<-release
			return nil
		})
	}()
	<-entered
	// a holds the write lock although it wrote nothing.
	err = b.Tx(ctx, func(tx *Tx) error { return nil })
	close(release)
	if err == nil || !strings.Contains(err.Error(), "begin") {
		t.Errorf("second writer while the first holds an empty transaction: err = %v, want a busy error at begin", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
