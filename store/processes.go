package store

import (
	"context"
	"fmt"
	"time"
)

// Process is a process the agent started for a component, recorded so that
// a restarted agent never starts a second copy.
type Process struct {
	Component string // the key; required
	PID       int
	// StartTicks is field 22 of /proc/PID/stat (start time in clock ticks
	// after boot); with PID it identifies the process across pid reuse.
	StartTicks uint64
	PGID       int
	// CgroupPath is the component's cgroup; "" = none.
	CgroupPath string
	// StartedAt is when it was started; zero = now.
	StartedAt time.Time
}

// RecordProcess records p for its component, replacing an earlier record.
func (tx *Tx) RecordProcess(ctx context.Context, p Process) error {
	if p.Component == "" || p.PID <= 0 {
		return fmt.Errorf("record process: %w: need a component and a positive pid (got %q, %d)", ErrInvalid, p.Component, p.PID)
	}
	_, err := tx.q.ExecContext(ctx, `
		INSERT INTO processes (component, pid, start_ticks, pgid, cgroup, started_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (component) DO UPDATE SET
			pid = excluded.pid, start_ticks = excluded.start_ticks, pgid = excluded.pgid,
			cgroup = excluded.cgroup, started_at = excluded.started_at`,
		p.Component, p.PID, int64(p.StartTicks), p.PGID, p.CgroupPath, toMillis(tx.stamp(p.StartedAt)))
	if err != nil {
		return fmt.Errorf("record process %s pid %d: %w", p.Component, p.PID, err)
	}
	return nil
}

// ClearProcess forgets the component's process. Clearing a component with
// no record is not an error.
func (tx *Tx) ClearProcess(ctx context.Context, component string) error {
	if _, err := tx.q.ExecContext(ctx, `DELETE FROM processes WHERE component = ?`, component); err != nil {
		return fmt.Errorf("clear process %s: %w", component, err)
	}
	return nil
}

// ListProcesses returns every recorded process, ordered by component.
func (tx *Tx) ListProcesses(ctx context.Context) ([]Process, error) {
	rows, err := tx.q.QueryContext(ctx, `
		SELECT component, pid, start_ticks, pgid, cgroup, started_at
		FROM processes ORDER BY component`)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	defer rows.Close()
	var out []Process
	for rows.Next() {
		var (
			p       Process
			ticks   int64
			started int64
		)
		if err := rows.Scan(&p.Component, &p.PID, &ticks, &p.PGID, &p.CgroupPath, &started); err != nil {
			return nil, fmt.Errorf("list processes: %w", err)
		}
		p.StartTicks = uint64(ticks)
		p.StartedAt = fromMillis(started)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	return out, nil
}

// RecordProcess durably records p for its component, replacing an earlier
// record. Call it right after the process started.
func (s *Store) RecordProcess(ctx context.Context, p Process) error {
	return s.grouped(ctx, func(tx *Tx) error { return tx.RecordProcess(ctx, p) })
}

// ClearProcess forgets the component's process; call it once the process
// is known to be gone.
func (s *Store) ClearProcess(ctx context.Context, component string) error {
	return s.grouped(ctx, func(tx *Tx) error { return tx.ClearProcess(ctx, component) })
}

// ListProcesses returns every recorded process, ordered by component.
func (s *Store) ListProcesses(ctx context.Context) ([]Process, error) {
	return s.reader.ListProcesses(ctx)
}
