package message

import "time"

// Job statuses.
const (
	StatusQueued     = "QUEUED"
	StatusInProgress = "IN_PROGRESS"
	StatusSucceeded  = "SUCCEEDED"
	StatusFailed     = "FAILED"
	StatusRejected   = "REJECTED"
	StatusCanceled   = "CANCELED"
)

// Final reports whether a job status is the job's last.
func Final(status string) bool {
	switch status {
	case StatusSucceeded, StatusFailed, StatusRejected, StatusCanceled:
		return true
	}
	return false
}

// JobStatus is one message on …/jobs/<job_id>/status. Seq increases by one
// with every message the device sends through its outbox, across jobs and
// restarts; a controller drops duplicates by (DeviceID, Seq).
type JobStatus struct {
	DeviceID     string            `json:"device_id"`
	JobID        string            `json:"job_id"`
	Seq          uint64            `json:"seq"`
	Status       string            `json:"status"`
	Step         string            `json:"step,omitempty"`
	Detail       string            `json:"detail,omitempty"`
	ErrorCode    string            `json:"error_code,omitempty"`
	RolledBack   bool              `json:"rolled_back,omitempty"`
	Components   []ComponentStatus `json:"components,omitempty"`
	AgentVersion string            `json:"agent_version"`
	TS           time.Time         `json:"ts"`
}

// ComponentStatus is one component as a status or state message lists it.
type ComponentStatus struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	State   string `json:"state"`
}

// State is the device's retained …/state message; the will message is the
// same with Online false.
type State struct {
	DeviceID     string            `json:"device_id"`
	Seq          uint64            `json:"seq,omitempty"`
	Online       bool              `json:"online"`
	AgentVersion string            `json:"agent_version"`
	Groups       []string          `json:"groups"`
	Components   []ComponentStatus `json:"components"`
	Healthy      bool              `json:"healthy"`
	LastJob      *LastJob          `json:"last_job,omitempty"`
	TS           time.Time         `json:"ts"`
}

// LastJob is the last job a device finished, in its state.
type LastJob struct {
	JobID  string `json:"job_id"`
	Status string `json:"status"`
}
