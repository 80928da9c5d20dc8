package tufrepo

import "time"

// Options tune expiries and the clock. The zero value uses the defaults.
type Options struct {
	// Now is the clock metadata expiries count from. nil = time.Now.
	Now func() time.Time
	// RootExpiry is how long root metadata stays valid. 0 = 365 days.
	RootExpiry time.Duration
	// TargetsExpiry is how long targets metadata stays valid; Publish
	// re-signs targets once less than half of it is left. 0 = 90 days.
	TargetsExpiry time.Duration
	// SnapshotExpiry is how long snapshot metadata stays valid. 0 = 7 days.
	SnapshotExpiry time.Duration
	// TimestampExpiry is how long timestamp metadata stays valid: devices
	// refuse the repository (METADATA_EXPIRED) unless Publish runs at least
	// this often. 0 = 1 day.
	TimestampExpiry time.Duration
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now().UTC()
	}
	return time.Now().UTC()
}

func (o Options) expiry(role string) time.Time {
	const day = 24 * time.Hour
	var d time.Duration
	switch role {
	case RoleRoot:
		d = or(o.RootExpiry, 365*day)
	case RoleTargets:
		d = or(o.TargetsExpiry, 90*day)
	case RoleSnapshot:
		d = or(o.SnapshotExpiry, 7*day)
	default:
		d = or(o.TimestampExpiry, day)
	}
	return o.now().Add(d).Truncate(time.Second)
}

func (o Options) lifetime(role string) time.Duration {
	return o.expiry(role).Sub(o.now())
}

func or(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
