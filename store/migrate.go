package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"sort"
	"strconv"
)

// migrationFiles is the schema history, applied in file-name order.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads migrations/*.sql from fsys and checks that they are
// numbered 1, 2, 3, … with no gap or duplicate.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	// NNNN_name.sql; NNNN is the schema version the file brings the
	// database to.
	migrationName := regexp.MustCompile(`^([0-9]{4})_[a-z0-9_]+\.sql$`)
	var ms []migration
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		b, err := fs.ReadFile(fsys, path.Join("migrations", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: expected version %04d (versions start at 1 with no gaps or duplicates)", m.name, i+1)
		}
	}
	return ms, nil
}

// migrate brings the database behind db (the writer pool, whose
// transactions begin IMMEDIATE) to the newest version in fsys. Each
// migration runs in its own transaction together with the PRAGMA
// user_version that records it, so a crash leaves the database at a
// version boundary. The version is read inside each transaction, so two
// processes opening the same file at once do not apply a migration twice.
func migrate(ctx context.Context, db *sql.DB, fsys fs.FS, logger *slog.Logger) error {
	ms, err := loadMigrations(fsys)
	if err != nil {
		return err
	}
	for {
		done, err := migrateOne(ctx, db, ms, logger)
		if err != nil || done {
			return err
		}
	}
}

// migrateOne applies the next migration, or reports done when there is
// none.
func migrateOne(ctx context.Context, db *sql.DB, ms []migration, logger *slog.Logger) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migrate: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit

	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return false, fmt.Errorf("migrate: read user_version: %w", err)
	}
	switch {
	case v > len(ms):
		return false, fmt.Errorf("%w: database is at schema version %d, this build knows up to %d", ErrSchemaTooNew, v, len(ms))
	case v == len(ms):
		return true, nil
	case v < 0:
		return false, fmt.Errorf("migrate: %w: user_version %d", ErrInvalid, v)
	}
	m := ms[v]
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return false, fmt.Errorf("migrate %s: %w", m.name, err)
	}
	// PRAGMA takes no bound parameters; m.version is an int.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.version)); err != nil {
		return false, fmt.Errorf("migrate %s: record version: %w", m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrate %s: commit: %w", m.name, err)
	}
	logger.Info("store migrated", "migration", m.name, "version", m.version)
	return false, nil
}
