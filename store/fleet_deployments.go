package store

import (
	"context"
	"fmt"
	"time"
)

// FleetDeployment is the last deployment that SUCCEEDED on a device: the
// manifest it runs, as far as the fleet controller knows.
type FleetDeployment struct {
	DeviceID  string
	RolloutID string // the rollout whose job it was
	JobID     string
	Manifest  string // the deployment manifest's TOML text
	// SucceededAt is when the success was received; zero means now.
	SucceededAt time.Time
}

// RecordDeployment records d as its device's last successful deployment,
// replacing the one recorded before.
func (f *Fleet) RecordDeployment(ctx context.Context, d FleetDeployment) error {
	if err := d.check(); err != nil {
		return err
	}
	return f.recordDeployment(ctx, f.w, d)
}

func (d FleetDeployment) check() error {
	if d.DeviceID == "" || d.JobID == "" || d.Manifest == "" {
		return fmt.Errorf("record deployment of device %q: %w: device, job and manifest are required", d.DeviceID, ErrInvalid)
	}
	return nil
}

func (f *Fleet) recordDeployment(ctx context.Context, q querier, d FleetDeployment) error {
	at := d.SucceededAt
	if at.IsZero() {
		at = f.now()
	}
	if _, err := q.ExecContext(ctx, `
		INSERT INTO device_deployments (device_id, rollout_id, job_id, manifest, succeeded_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (device_id) DO UPDATE SET rollout_id = excluded.rollout_id, job_id = excluded.job_id,
			manifest = excluded.manifest, succeeded_at = excluded.succeeded_at`,
		d.DeviceID, d.RolloutID, d.JobID, d.Manifest, toMillis(at)); err != nil {
		return fmt.Errorf("record deployment of device %s: %w", d.DeviceID, err)
	}
	return nil
}

// Deployments returns every device's last successful deployment, by
// device id.
func (f *Fleet) Deployments(ctx context.Context) (map[string]FleetDeployment, error) {
	rows, err := f.r.QueryContext(ctx, `SELECT device_id, rollout_id, job_id, manifest, succeeded_at FROM device_deployments`)
	if err != nil {
		return nil, fmt.Errorf("list device deployments: %w", err)
	}
	defer rows.Close()
	out := map[string]FleetDeployment{}
	for rows.Next() {
		var d FleetDeployment
		var at int64
		if err := rows.Scan(&d.DeviceID, &d.RolloutID, &d.JobID, &d.Manifest, &at); err != nil {
			return nil, fmt.Errorf("list device deployments: %w", err)
		}
		d.SucceededAt = fromMillis(at)
		out[d.DeviceID] = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list device deployments: %w", err)
	}
	return out, nil
}
