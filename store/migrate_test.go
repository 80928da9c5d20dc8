package store

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func TestEmbeddedMigrationsLoad(t *testing.T) {
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].name != "0001_init.sql" {
		t.Fatalf("embedded migrations = %v, want 0001_init.sql first", ms)
	}
}

func TestLoadMigrationsChecksNames(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	cases := []struct {
		name    string
		fsys    fstest.MapFS
		wantErr string
		want    []string
	}{
		{
			name: "sorted by number, not listing order",
			fsys: fstest.MapFS{
				"migrations/0002_b.sql": file("B"),
				"migrations/0001_a.sql": file("A"),
				"migrations/0003_c.sql": file("C"),
			},
			want: []string{"0001_a.sql", "0002_b.sql", "0003_c.sql"},
		},
		{
			name:    "gap",
			fsys:    fstest.MapFS{"migrations/0001_a.sql": file("A"), "migrations/0003_c.sql": file("C")},
			wantErr: "expected version 0002",
		},
		{
			name:    "duplicate number",
			fsys:    fstest.MapFS{"migrations/0001_a.sql": file("A"), "migrations/0001_b.sql": file("B")},
			wantErr: "expected version 0002",
		},
		{
			name:    "starts at zero",
			fsys:    fstest.MapFS{"migrations/0000_a.sql": file("A")},
			wantErr: "expected version 0001",
		},
		{
			name:    "bad name",
			fsys:    fstest.MapFS{"migrations/1_init.sql": file("A")},
			wantErr: "NNNN_name.sql",
		},
		{
			name:    "no folder",
			fsys:    fstest.MapFS{},
			wantErr: "read migrations",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := loadMigrations(tc.fsys)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, m := range ms {
				got = append(got, m.name)
				if m.version != i+1 {
					t.Errorf("%s has version %d, want %d", m.name, m.version, i+1)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("order = %v, want %v", got, tc.want)
			}
		})
	}
}

// openWriter opens a bare writer pool like Open does, without migrating.
func openWriter(t *testing.T) *sql.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.db")
	db, err := sql.Open("sqlite", dsn(path, map[string][]string{
		"_pragma": {"journal_mode(WAL)", "synchronous(FULL)"},
		"_txlock": {"immediate"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func userVersion(t *testing.T, db *sql.DB) int {
	t.Helper()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func tableExists(t *testing.T, db *sql.DB, name string) bool {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestMigrateAppliesInOrderAndStopsAtFailure(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	db := openWriter(t)
	v1 := fstest.MapFS{
		"migrations/0001_a.sql": {Data: []byte("CREATE TABLE a (x INTEGER);\nINSERT INTO a VALUES (1);")},
		"migrations/0002_b.sql": {Data: []byte("CREATE TABLE b (y INTEGER REFERENCES a (x));\nINSERT INTO b SELECT x FROM a;")},
	}
	if err := migrate(ctx, db, v1, log); err != nil {
		t.Fatal(err)
	}
	if v := userVersion(t, db); v != 2 {
		t.Fatalf("user_version = %d, want 2", v)
	}
	var y int
	if err := db.QueryRow("SELECT y FROM b").Scan(&y); err != nil || y != 1 {
		t.Fatalf("0002 ran before 0001 or not at all: y = %d, %v", y, err)
	}
	// Running again changes nothing.
	if err := migrate(ctx, db, v1, log); err != nil {
		t.Fatal(err)
	}

	// A third migration whose second statement fails leaves no trace of
	// its first statement and no version bump.
	v2 := fstest.MapFS{
		"migrations/0001_a.sql": v1["migrations/0001_a.sql"],
		"migrations/0002_b.sql": v1["migrations/0002_b.sql"],
		"migrations/0003_c.sql": {Data: []byte("CREATE TABLE c (z INTEGER);\nINSERT INTO nowhere VALUES (1);")},
	}
	err := migrate(ctx, db, v2, log)
	if err == nil || !strings.Contains(err.Error(), "0003_c.sql") {
		t.Fatalf("failing migration: err = %v, want it named", err)
	}
	if v := userVersion(t, db); v != 2 {
		t.Errorf("user_version after a failed migration = %d, want 2", v)
	}
	if tableExists(t, db, "c") {
		t.Error("table c exists: the failed migration was not rolled back")
	}

	// Code that knows fewer migrations than the file refuses it.
	v0 := fstest.MapFS{"migrations/0001_a.sql": v1["migrations/0001_a.sql"]}
	if err := migrate(ctx, db, v0, log); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("older code on a newer file: err = %v, want ErrSchemaTooNew", err)
	}
}
