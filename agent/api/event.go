package api

import "time"

// Event is one line of GET /v1/events: a component transition, deployment
// progress, a warning or a plugin run. The zero value of every field but
// Kind means "not applicable".
type Event struct {
	At         time.Time         `json:"ts"`
	Kind       string            `json:"kind"` // transition | deployment | warning | plugin
	Component  string            `json:"component,omitempty"`
	From       string            `json:"from,omitempty"`
	To         string            `json:"to,omitempty"`
	Reason     string            `json:"reason,omitempty"`
	Deployment string            `json:"deployment,omitempty"`
	Step       string            `json:"step,omitempty"`
	Detail     map[string]string `json:"detail,omitempty"`
	// Dropped counts events this stream lost just before this one because
	// the reader fell behind.
	Dropped uint64 `json:"dropped,omitempty"`
}

// Event kinds.
const (
	EventTransition = "transition"
	EventDeployment = "deployment"
	EventWarning    = "warning"
	EventPlugin     = "plugin"
)
