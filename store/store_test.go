package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/store"
)

// rawDB opens the file with the plain driver, to look behind the store's
// back.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatalf("raw open: %v", err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func migrationCount(t *testing.T) int {
	t.Helper()
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations found: %v", err)
	}
	return len(files)
}

func TestOpenFromEmptyMigratesAndUsesWAL(t *testing.T) {
	ctx := context.Background()
	var logs bytes.Buffer
	s, path := openTemp(t, store.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check on a new database: %v", err)
	}
	if !strings.Contains(logs.String(), "0001_init.sql") {
		t.Errorf("migration not logged; logs:\n%s", logs.String())
	}
	// The WAL file exists while the store is open.
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Errorf("no WAL file beside the database: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	db := rawDB(t, path)
	var version int
	if err := db.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if want := migrationCount(t); version != want {
		t.Errorf("user_version = %d, want %d (one per migration file)", version, want)
	}
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal (persistent in the file)", mode)
	}
	for _, table := range []string{"components", "processes", "deployments", "steps", "jobs",
		"outbox", "plugin_state", "events", "artifacts", "kv"} {
		var n int
		if err := db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?", table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("table %s missing", table)
		}
	}
}

func TestReopenIsNoOpMigrationAndKeepsData(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if err := s.UpsertComponent(ctx, store.Component{Name: "com.example.a", Version: "1.0.0", Kind: "process", State: "RUNNING"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateDeployment(ctx, store.Deployment{ID: "d1", Manifest: "format = 1", Status: store.DeploymentInProgress}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendStep(ctx, "d1", store.Step{Name: "install", Status: store.StepDone}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnqueueOutbox(ctx, store.Message{Topic: "t", Payload: []byte("p"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetValue(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	s = reopen(t, s, store.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if logs.Len() != 0 {
		t.Errorf("reopening migrated again: %s", logs.String())
	}
	if c, err := s.GetComponent(ctx, "com.example.a"); err != nil || c.State != "RUNNING" {
		t.Errorf("component after reopen = %+v, %v", c, err)
	}
	if steps, err := s.Steps(ctx, "d1"); err != nil || len(steps) != 1 || steps[0].Name != "install" {
		t.Errorf("steps after reopen = %+v, %v", steps, err)
	}
	if n, err := s.OutboxLen(ctx); err != nil || n != 1 {
		t.Errorf("outbox after reopen = %d, %v", n, err)
	}
	if v, err := s.GetValue(ctx, "k"); err != nil || string(v) != "v" {
		t.Errorf("kv after reopen = %q, %v", v, err)
	}
	if err := s.Check(ctx); err != nil {
		t.Error(err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	s, path := openTemp(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	if _, err := db.Exec("PRAGMA user_version = 999"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	_, err := store.Open(context.Background(), path)
	if !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("Open of a newer database: err = %v, want ErrSchemaTooNew", err)
	}
	if !strings.Contains(err.Error(), "999") {
		t.Errorf("error does not name the version found: %v", err)
	}
}

func TestOpenBadPath(t *testing.T) {
	ctx := context.Background()
	if _, err := store.Open(ctx, filepath.Join(t.TempDir(), "what?.db")); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("path with '?': err = %v, want ErrInvalid", err)
	}
	if _, err := store.Open(ctx, ""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("empty path: err = %v, want ErrInvalid", err)
	}
	missing := filepath.Join(t.TempDir(), "no", "such", "dir", "keystone.db")
	if s, err := store.Open(ctx, missing); err == nil {
		s.Close()
		t.Errorf("Open in a missing folder succeeded")
	} else if !strings.Contains(err.Error(), missing) {
		t.Errorf("error does not name the path: %v", err)
	}
}

func TestPathWithSpacesAndPercent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "my data %20 #1.db")
	s, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SetValue(context.Background(), "x", []byte("y")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at the exact path given: %v", err)
	}
}

func TestCheckReportsCorruption(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	detail := json.RawMessage(`{"pad":"` + strings.Repeat("x", 200) + `"}`)
	for i := range 300 {
		if _, err := s.AppendEvent(ctx, store.Event{Kind: "state", Component: fmt.Sprintf("c%03d", i), Detail: detail}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil { // checkpoints the WAL into the file
		t.Fatal(err)
	}

	db := rawDB(t, path)
	var root, pageSize int64
	if err := db.QueryRow("SELECT rootpage FROM sqlite_schema WHERE name = 'events_by_component'").Scan(&root); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("PRAGMA page_size").Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// Scribble over the index's root page, past its header.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	junk := bytes.Repeat([]byte{0xA5}, int(pageSize)-16)
	if _, err := f.WriteAt(junk, (root-1)*pageSize+16); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	s2, err := store.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open after damaging an index page: %v", err)
	}
	defer s2.Close()
	if err := s2.Check(ctx); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Check of a damaged file: err = %v, want ErrCorrupt", err)
	}
}

func TestClockFillsZeroTimes(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	s, _ := openTemp(t, store.WithClock(clk.Now))
	seq, err := s.AppendEvent(ctx, store.Event{Kind: "state"})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := s.Events(ctx, seq-1, 1)
	if err != nil || len(evs) != 1 {
		t.Fatalf("Events = %v, %v", evs, err)
	}
	if !evs[0].At.Equal(clk.Now()) || evs[0].At.Location() != time.UTC {
		t.Errorf("At = %v, want the fake clock's %v in UTC", evs[0].At, clk.Now())
	}
}

func TestClosedStoreFailsAndCloseTwice(t *testing.T) {
	s, _ := openTemp(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.SetValue(context.Background(), "k", nil); err == nil {
		t.Error("write after Close succeeded")
	}
	if _, err := s.GetValue(context.Background(), "k"); err == nil {
		t.Error("read after Close succeeded")
	}
}
