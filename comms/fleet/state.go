package fleet

import (
	"maps"
	"slices"
	"time"
)

// State is a rollout's whole record: what Core decides from. The caller
// stores it (as JSON) after every Step and gives it to Restore after a
// restart; nothing else is needed to go on where the rollout was.
type State struct {
	Config Config `json:"config"`
	Phase  Phase  `json:"phase"`
	// Ring is the ring in progress (0-based); -1 before the start.
	Ring int `json:"ring"`
	// Devices are the targets in rank order, each with its ring.
	Devices []Device `json:"devices"`
	// NextPublishAt is the earliest time of the next publish under Rate.
	NextPublishAt time.Time `json:"next_publish_at,omitzero"`
	// Idle: nothing was left to publish at the last publish pass, so the
	// rate's clock starts afresh with the next one (no burst after a wait).
	Idle bool `json:"idle"`
	// Reason is why the rollout halted, was paused or canceled.
	Reason string `json:"reason,omitempty"`
}

// Device is one target's record.
type Device struct {
	ID      string  `json:"id"`
	Ring    int     `json:"ring"`
	Outcome Outcome `json:"outcome"`
	// Known, Online, Healthy: its last retained state, when one came.
	Known   bool `json:"known"`
	Online  bool `json:"online"`
	Healthy bool `json:"healthy"`
	// PublishedAt is when its job was published (the job's created_at);
	// zero while none was.
	PublishedAt time.Time `json:"published_at,omitzero"`
	// Status is the last status of its job, with when it came; ErrorCode
	// and Detail are the last failure's.
	Status    string    `json:"status,omitempty"`
	StatusAt  time.Time `json:"status_at,omitzero"`
	ErrorCode string    `json:"error_code,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	// SucceededAt is when its job SUCCEEDED; SoakSince when its current
	// healthy stretch began (zero while not healthy).
	SucceededAt time.Time `json:"succeeded_at,omitzero"`
	SoakSince   time.Time `json:"soak_since,omitzero"`
	// Late is a final status that came after the device timed out; it
	// does not change the outcome.
	Late string `json:"late,omitempty"`
	// CancelSent: a cancel job went out for its job.
	CancelSent bool `json:"cancel_sent,omitempty"`
	// RollbackSent: its rollback job went out; RollbackStatus is that
	// job's last status.
	RollbackSent   bool   `json:"rollback_sent,omitempty"`
	RollbackStatus string `json:"rollback_status,omitempty"`
}

// clone returns a deep copy of s.
func (s State) clone() State {
	c := s
	c.Config.Targets = slices.Clone(s.Config.Targets)
	c.Config.Rings = slices.Clone(s.Config.Rings)
	c.Config.Previous = maps.Clone(s.Config.Previous)
	c.Devices = slices.Clone(s.Devices)
	return c
}
