package store

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// fleetMigrationFiles is the fleet state file's schema history, apart from
// the agent's: the two databases never share a file.
//
//go:embed fleet_migrations/*.sql
var fleetMigrationFiles embed.FS

// fleetMigrations shows fleet_migrations/ under the name migrate reads
// ("migrations"), so both databases use the same migration code.
type fleetMigrations struct{}

func (fleetMigrations) Open(name string) (fs.File, error) {
	if name == "migrations" || strings.HasPrefix(name, "migrations/") {
		name = "fleet_" + name
	}
	return fleetMigrationFiles.Open(name)
}

// Fleet is the fleet controller's state file: rollouts and their records,
// the job statuses received (each once), the devices' latest states and
// the control requests between processes. It is safe for concurrent use
// and for use by several processes at once (writes wait for each other
// up to the busy timeout). Create it with [OpenFleet], release it with
// [Fleet.Close].
type Fleet struct {
	path string
	w    *sql.DB // the one writer connection (BEGIN IMMEDIATE)
	r    *sql.DB // read-only connections
	now  func() time.Time

	closeOnce sync.Once
	closeErr  error
}

// FleetRollout is one rollout's row.
type FleetRollout struct {
	ID    string
	Phase string
	// Open: the rollout may still publish jobs of its own; a restarted
	// controller drives every open rollout.
	Open bool
	// State is the rollout's record as JSON, written by its driver.
	State json.RawMessage
	// Owner names the process driving it while its lease runs
	// (LeaseUntil); "" when none claimed it.
	Owner      string
	LeaseUntil time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// FleetStatus is one job status as received.
type FleetStatus struct {
	DeviceID   string
	Seq        uint64
	JobID      string
	Status     string
	Body       json.RawMessage // the status message as received
	ReceivedAt time.Time
}

// FleetDevice is a device's latest retained state.
type FleetDevice struct {
	ID       string
	Online   bool
	Body     json.RawMessage // the state message as received
	LastSeen time.Time
}

// FleetControl is a control request for a rollout's driver.
type FleetControl struct {
	ID          int64
	RolloutID   string
	Action      string // what the driver is asked to do: pause, resume, cancel
	Reason      string
	RequestedAt time.Time
}

// OpenFleet opens (creating if needed) the fleet state file at path in WAL
// mode and applies its embedded migrations. The folder holding path must
// exist. Of opts, WithClock, WithBusyTimeout, WithReaders and WithLogger
// apply as for [Open]. ctx bounds the opening only.
func OpenFleet(ctx context.Context, path string, opts ...Option) (*Fleet, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if path == "" || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open fleet state %q: %w: path must be non-empty and contain no '?'", path, ErrInvalid)
	}
	busy := fmt.Sprintf("busy_timeout(%d)", o.busyTimeout.Milliseconds())
	w, err := sql.Open("sqlite", dsn(path, url.Values{
		"_pragma": {busy, "foreign_keys(1)", "journal_mode(WAL)", "synchronous(FULL)"},
		"_txlock": {"immediate"},
	}))
	if err != nil {
		return nil, fmt.Errorf("open fleet state %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	// checkWAL needs only the writer.
	if err := (&Store{w: w}).checkWAL(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open fleet state %s: %w", path, err)
	}
	if err := migrate(ctx, w, fleetMigrations{}, o.logger); err != nil {
		w.Close()
		return nil, fmt.Errorf("open fleet state %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn(path, url.Values{"_pragma": {busy, "foreign_keys(1)", "query_only(1)"}}))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open fleet state %s: readers: %w", path, err)
	}
	r.SetMaxOpenConns(o.readers)
	r.SetMaxIdleConns(o.readers)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("open fleet state %s: readers: %w", path, err)
	}
	return &Fleet{path: path, w: w, r: r, now: o.now}, nil
}

// Path is the file the state was opened on.
func (f *Fleet) Path() string { return f.path }

// Close closes the file. Methods called after Close return an error.
func (f *Fleet) Close() error {
	f.closeOnce.Do(func() {
		if err := errors.Join(f.r.Close(), f.w.Close()); err != nil {
			f.closeErr = fmt.Errorf("close fleet state %s: %w", f.path, err)
		}
	})
	return f.closeErr
}

// CreateRollout records a new rollout; ErrExists when its id was used.
// A zero CreatedAt means now.
func (f *Fleet) CreateRollout(ctx context.Context, ro FleetRollout) error {
	if ro.ID == "" || !json.Valid(ro.State) {
		return fmt.Errorf("create rollout %q: %w: an id and a JSON state are required", ro.ID, ErrInvalid)
	}
	at := ro.CreatedAt
	if at.IsZero() {
		at = f.now()
	}
	_, err := f.w.ExecContext(ctx, `
		INSERT INTO rollouts (id, phase, open, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
		ro.ID, ro.Phase, ro.Open, string(ro.State), toMillis(at), toMillis(at))
	if isConstraint(err) {
		return fmt.Errorf("create rollout %s: %w", ro.ID, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create rollout %s: %w", ro.ID, err)
	}
	return nil
}

// SaveRollout replaces a rollout's phase, open flag and state, and records
// deployments (as RecordDeployment does, in order), in one transaction;
// ErrNotFound when there is no such rollout.
func (f *Fleet) SaveRollout(ctx context.Context, id, phase string, open bool, state json.RawMessage, deployments ...FleetDeployment) error {
	if !json.Valid(state) {
		return fmt.Errorf("save rollout %s: %w: state is not JSON", id, ErrInvalid)
	}
	for _, d := range deployments {
		if err := d.check(); err != nil {
			return fmt.Errorf("save rollout %s: %w", id, err)
		}
	}
	tx, err := f.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save rollout %s: %w", id, err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	res, err := tx.ExecContext(ctx, `UPDATE rollouts SET phase = ?, open = ?, state = ?, updated_at = ? WHERE id = ?`,
		phase, open, string(state), toMillis(f.now()), id)
	if err != nil {
		return fmt.Errorf("save rollout %s: %w", id, err)
	}
	if err := changedOrNotFound(res, "save rollout "+id); err != nil {
		return err
	}
	for _, d := range deployments {
		if err := f.recordDeployment(ctx, tx, d); err != nil {
			return fmt.Errorf("save rollout %s: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save rollout %s: commit: %w", id, err)
	}
	return nil
}

// ClaimRollout makes owner the driver of rollout id until until, when no
// other owner holds an unexpired lease on it (a lease of owner's own is
// renewed). It reports whether owner now holds the lease.
func (f *Fleet) ClaimRollout(ctx context.Context, id, owner string, until time.Time) (bool, error) {
	res, err := f.w.ExecContext(ctx, `
		UPDATE rollouts SET owner = ?, lease_until = ?
		WHERE id = ? AND (owner = '' OR owner = ? OR lease_until < ?)`,
		owner, toMillis(until), id, owner, toMillis(f.now()))
	if err != nil {
		return false, fmt.Errorf("claim rollout %s: %w", id, err)
	}
	n, err := rowsChanged(res)
	if err != nil {
		return false, fmt.Errorf("claim rollout %s: %w", id, err)
	}
	return n == 1, nil
}

// ReleaseRollout gives up owner's lease on rollout id, so that another
// process may drive it at once.
func (f *Fleet) ReleaseRollout(ctx context.Context, id, owner string) error {
	if _, err := f.w.ExecContext(ctx, `UPDATE rollouts SET owner = '', lease_until = 0 WHERE id = ? AND owner = ?`,
		id, owner); err != nil {
		return fmt.Errorf("release rollout %s: %w", id, err)
	}
	return nil
}

const rolloutColumns = `id, phase, open, state, owner, lease_until, created_at, updated_at`

func scanRollout(sc interface{ Scan(...any) error }) (FleetRollout, error) {
	var ro FleetRollout
	var state string
	var lease, created, updated int64
	if err := sc.Scan(&ro.ID, &ro.Phase, &ro.Open, &state, &ro.Owner, &lease, &created, &updated); err != nil {
		return FleetRollout{}, err
	}
	ro.State = json.RawMessage(state)
	if lease != 0 {
		ro.LeaseUntil = fromMillis(lease)
	}
	ro.CreatedAt, ro.UpdatedAt = fromMillis(created), fromMillis(updated)
	return ro, nil
}

// Rollout returns rollout id, or ErrNotFound.
func (f *Fleet) Rollout(ctx context.Context, id string) (FleetRollout, error) {
	ro, err := scanRollout(f.r.QueryRowContext(ctx, `SELECT `+rolloutColumns+` FROM rollouts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return FleetRollout{}, fmt.Errorf("rollout %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return FleetRollout{}, fmt.Errorf("rollout %s: %w", id, err)
	}
	return ro, nil
}

// Rollouts lists the rollouts, oldest first; only the open ones when
// openOnly.
func (f *Fleet) Rollouts(ctx context.Context, openOnly bool) ([]FleetRollout, error) {
	q := `SELECT ` + rolloutColumns + ` FROM rollouts`
	if openOnly {
		q += ` WHERE open = 1`
	}
	rows, err := f.r.QueryContext(ctx, q+` ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list rollouts: %w", err)
	}
	defer rows.Close()
	var out []FleetRollout
	for rows.Next() {
		ro, err := scanRollout(rows)
		if err != nil {
			return nil, fmt.Errorf("list rollouts: %w", err)
		}
		out = append(out, ro)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list rollouts: %w", err)
	}
	return out, nil
}

// RecordStatus records a status received and reports whether it is new:
// false when a status with the same device and seq was recorded before
// (a redelivery), which is then left as it was. A zero ReceivedAt means
// now.
func (f *Fleet) RecordStatus(ctx context.Context, st FleetStatus) (bool, error) {
	if st.DeviceID == "" || st.Seq > 1<<63-1 || !json.Valid(st.Body) {
		return false, fmt.Errorf("record status %s/%d: %w", st.DeviceID, st.Seq, ErrInvalid)
	}
	return f.recordStatus(ctx, f.w, st)
}

func (f *Fleet) recordStatus(ctx context.Context, q querier, st FleetStatus) (bool, error) {
	at := st.ReceivedAt
	if at.IsZero() {
		at = f.now()
	}
	res, err := q.ExecContext(ctx, `
		INSERT INTO statuses (device_id, seq, job_id, status, body, received_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (device_id, seq) DO NOTHING`,
		st.DeviceID, int64(st.Seq), st.JobID, st.Status, string(st.Body), toMillis(at))
	if err != nil {
		return false, fmt.Errorf("record status %s/%d: %w", st.DeviceID, st.Seq, err)
	}
	n, err := rowsChanged(res)
	if err != nil {
		return false, fmt.Errorf("record status %s/%d: %w", st.DeviceID, st.Seq, err)
	}
	return n == 1, nil
}

// RecordBatch records statuses (as RecordStatus does) and device states
// (as SaveDeviceState does) in one transaction, and reports for each
// status whether it is new.
func (f *Fleet) RecordBatch(ctx context.Context, statuses []FleetStatus, devices []FleetDevice) ([]bool, error) {
	for _, st := range statuses {
		if st.DeviceID == "" || st.Seq > 1<<63-1 || !json.Valid(st.Body) {
			return nil, fmt.Errorf("record status %s/%d: %w", st.DeviceID, st.Seq, ErrInvalid)
		}
	}
	for _, d := range devices {
		if d.ID == "" || !json.Valid(d.Body) {
			return nil, fmt.Errorf("save state of device %q: %w", d.ID, ErrInvalid)
		}
	}
	tx, err := f.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("record a batch: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	fresh := make([]bool, len(statuses))
	for i, st := range statuses {
		if fresh[i], err = f.recordStatus(ctx, tx, st); err != nil {
			return nil, err
		}
	}
	for _, d := range devices {
		if err := f.saveDeviceState(ctx, tx, d); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("record a batch: commit: %w", err)
	}
	return fresh, nil
}

// StatusesOfJobs returns the statuses recorded for jobs whose id starts
// with prefix, in the order received (then by device and seq).
func (f *Fleet) StatusesOfJobs(ctx context.Context, prefix string) ([]FleetStatus, error) {
	rows, err := f.r.QueryContext(ctx, `
		SELECT device_id, seq, job_id, status, body, received_at FROM statuses
		WHERE substr(job_id, 1, length(?)) = ? ORDER BY received_at, device_id, seq`, prefix, prefix)
	if err != nil {
		return nil, fmt.Errorf("statuses of %s*: %w", prefix, err)
	}
	defer rows.Close()
	var out []FleetStatus
	for rows.Next() {
		var st FleetStatus
		var seq, at int64
		var body string
		if err := rows.Scan(&st.DeviceID, &seq, &st.JobID, &st.Status, &body, &at); err != nil {
			return nil, fmt.Errorf("statuses of %s*: %w", prefix, err)
		}
		st.Seq, st.Body, st.ReceivedAt = uint64(seq), json.RawMessage(body), fromMillis(at)
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("statuses of %s*: %w", prefix, err)
	}
	return out, nil
}

// SaveDeviceState records d as the device's latest state. A zero LastSeen
// means now.
func (f *Fleet) SaveDeviceState(ctx context.Context, d FleetDevice) error {
	if d.ID == "" || !json.Valid(d.Body) {
		return fmt.Errorf("save state of device %q: %w", d.ID, ErrInvalid)
	}
	return f.saveDeviceState(ctx, f.w, d)
}

func (f *Fleet) saveDeviceState(ctx context.Context, q querier, d FleetDevice) error {
	at := d.LastSeen
	if at.IsZero() {
		at = f.now()
	}
	if _, err := q.ExecContext(ctx, `
		INSERT INTO device_states (device_id, online, body, last_seen) VALUES (?, ?, ?, ?)
		ON CONFLICT (device_id) DO UPDATE SET online = excluded.online, body = excluded.body, last_seen = excluded.last_seen`,
		d.ID, d.Online, string(d.Body), toMillis(at)); err != nil {
		return fmt.Errorf("save state of device %s: %w", d.ID, err)
	}
	return nil
}

// DeviceStates lists every device's latest recorded state, by id.
func (f *Fleet) DeviceStates(ctx context.Context) ([]FleetDevice, error) {
	rows, err := f.r.QueryContext(ctx, `SELECT device_id, online, body, last_seen FROM device_states ORDER BY device_id`)
	if err != nil {
		return nil, fmt.Errorf("list device states: %w", err)
	}
	defer rows.Close()
	var out []FleetDevice
	for rows.Next() {
		var d FleetDevice
		var body string
		var at int64
		if err := rows.Scan(&d.ID, &d.Online, &body, &at); err != nil {
			return nil, fmt.Errorf("list device states: %w", err)
		}
		d.Body, d.LastSeen = json.RawMessage(body), fromMillis(at)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list device states: %w", err)
	}
	return out, nil
}

// RequestControl asks the driver of rollout rolloutID to do action;
// ErrNotFound when there is no such rollout. A zero at means now.
func (f *Fleet) RequestControl(ctx context.Context, rolloutID, action, reason string, at time.Time) error {
	if action == "" {
		return fmt.Errorf("request %q of rollout %s: %w", action, rolloutID, ErrInvalid)
	}
	if at.IsZero() {
		at = f.now()
	}
	_, err := f.w.ExecContext(ctx, `
		INSERT INTO controls (rollout_id, action, reason, requested_at) VALUES (?, ?, ?, ?)`,
		rolloutID, action, reason, toMillis(at))
	if isConstraint(err) { // the foreign key: no such rollout
		return fmt.Errorf("request %s of rollout %s: %w", action, rolloutID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("request %s of rollout %s: %w", action, rolloutID, err)
	}
	return nil
}

// TakeControls removes and returns the control requests for rolloutID, in
// the order asked: each is taken exactly once.
func (f *Fleet) TakeControls(ctx context.Context, rolloutID string) (out []FleetControl, err error) {
	tx, err := f.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("take controls of %s: %w", rolloutID, err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	rows, err := tx.QueryContext(ctx, `
		SELECT id, rollout_id, action, reason, requested_at FROM controls WHERE rollout_id = ? ORDER BY id`, rolloutID)
	if err != nil {
		return nil, fmt.Errorf("take controls of %s: %w", rolloutID, err)
	}
	for rows.Next() {
		var c FleetControl
		var at int64
		if err := rows.Scan(&c.ID, &c.RolloutID, &c.Action, &c.Reason, &at); err != nil {
			rows.Close()
			return nil, fmt.Errorf("take controls of %s: %w", rolloutID, err)
		}
		c.RequestedAt = fromMillis(at)
		out = append(out, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("take controls of %s: %w", rolloutID, err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM controls WHERE rollout_id = ? AND id <= ?`, rolloutID, out[len(out)-1].ID); err != nil {
		return nil, fmt.Errorf("take controls of %s: %w", rolloutID, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("take controls of %s: commit: %w", rolloutID, err)
	}
	return out, nil
}

// isConstraint reports whether err is SQLite refusing a row for a
// constraint: a duplicate key or a missing foreign row.
func isConstraint(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
}
