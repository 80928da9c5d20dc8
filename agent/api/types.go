// Package api holds the local API's wire types and a client for
// them, shared by the agent's HTTP server and keystonectl.
//
// It owns the JSON shapes and the transport over the Unix socket. It makes no
// decisions and holds no state beyond a connection.
package api

import "time"

// Component is one entry of GET /v1/components.
type Component struct {
	Name       string    `json:"name"`
	Version    string    `json:"version"`
	Kind       string    `json:"kind"`
	State      string    `json:"state"`
	Pid        int       `json:"pid"`
	Restarts   int       `json:"restarts"`
	Since      time.Time `json:"since"`
	Health     string    `json:"health"`
	LastError  string    `json:"last_error"`
	CPUPercent float64   `json:"cpu_percent"`
	RSSBytes   uint64    `json:"rss_bytes"`
	// HealthDetail is what the last failed health check (or plugin run)
	// said, while the health is unhealthy.
	HealthDetail string `json:"health_detail,omitempty"`
	// WaitingFor says why a component that should run has not started
	// yet ("hard dependency com.example.db is STOPPED").
	WaitingFor string `json:"waiting_for,omitempty"`
	// Removed: the component is no longer deployed; GET
	// /v1/components/{name} still answers what it last was (its state,
	// version and last error) from its recorded transitions.
	Removed bool `json:"removed,omitempty"`
}

// ComponentDetail is GET /v1/components/{name}: the component and its recent
// transitions, oldest first.
type ComponentDetail struct {
	Component
	Transitions []Transition `json:"transitions"`
}

// Transition is one state change of a component.
type Transition struct {
	At      time.Time `json:"ts"`
	Version string    `json:"version,omitempty"` // the component's version at the time
	From    string    `json:"from"`
	To      string    `json:"to"`
	Reason  string    `json:"reason"`
}

// DeploymentRequest is the body of POST /v1/deployments. Files holds the
// recipes a local manifest references, by the path the manifest uses, and
// their detached signatures under the same path plus ".sig".
type DeploymentRequest struct {
	Manifest string            `json:"manifest"`
	Files    map[string][]byte `json:"files,omitempty"`
	// Preempt cancels a running deployment (it rolls back) instead of
	// queueing behind it.
	Preempt bool `json:"preempt,omitempty"`
	// DryRun computes the plan and applies nothing (keystonectl deploy plan).
	DryRun bool `json:"dry_run,omitempty"`
}

// DeploymentAccepted answers POST /v1/deployments.
type DeploymentAccepted struct {
	// ID is the deployment's id; left out of a dry run's answer.
	ID string `json:"id,omitempty"`
	// Plan is what the deployment changes; always set for a dry run.
	Plan []PlanItem `json:"plan,omitempty"`
	// Existing: the id was applied before with the same manifest; nothing
	// new was queued, and Status is where that deployment stands.
	Existing bool   `json:"existing,omitempty"`
	Status   string `json:"status,omitempty"`
	// RollbackTo is the deployment a rollback applies again.
	RollbackTo string `json:"rollback_to,omitempty"`
}

// PlanItem is one component's part in a deployment plan.
type PlanItem struct {
	Component   string `json:"component"`
	Action      string `json:"action"` // add | update | reconfigure | remove | unchanged | restart
	FromVersion string `json:"from_version,omitempty"`
	ToVersion   string `json:"to_version,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// Deployment is GET /v1/deployments/{id} (and an entry of the list).
type Deployment struct {
	ID         string     `json:"id"`
	Status     string     `json:"status"` // QUEUED IN_PROGRESS SUCCEEDED FAILED CANCELED
	RolledBack bool       `json:"rolled_back"`
	Error      string     `json:"error,omitempty"`
	ErrorCode  string     `json:"error_code,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Plan       []PlanItem `json:"plan,omitempty"`
	Steps      []Step     `json:"steps,omitempty"`
	// WaitingFor says, while IN_PROGRESS, what the current step waits on.
	WaitingFor string     `json:"waiting_for,omitempty"`
	Since      *time.Time `json:"waiting_since,omitempty"`
}

// Step is one checkpointed step of a deployment.
type Step struct {
	Seq       int64     `json:"seq"`
	Name      string    `json:"name"`
	Component string    `json:"component,omitempty"`
	Status    string    `json:"status"` // started | done | failed
	Detail    string    `json:"detail,omitempty"`
	At        time.Time `json:"ts"`
}

// Metric is one mapped plugin sample, as POST /v1/plugins/{name}/run answers.
type Metric struct {
	Name    string             `json:"name"`
	Type    string             `json:"type"`
	Help    string             `json:"help,omitempty"`
	Labels  map[string]string  `json:"labels,omitempty"`
	Value   float64            `json:"value"`
	Buckets map[string]float64 `json:"buckets,omitempty"`
	Sum     float64            `json:"sum,omitempty"`
	Count   uint64             `json:"count,omitempty"`
}

// Error is every error answer: {"error": "...", "code": "..."}.
type Error struct {
	Message string `json:"error"`
	Code    string `json:"code"`
	// Details lists every problem when there is more than one (for example
	// each validation error of a manifest).
	Details []string `json:"details,omitempty"`
}

// Error codes of the local API.
const (
	CodeNotFound   = "NOT_FOUND"
	CodeBadRequest = "BAD_REQUEST"
	CodeInvalid    = "VALIDATION_FAILED"
	CodeConflict   = "CONFLICT"
	CodeTooLarge   = "TOO_LARGE"
	CodeInternal   = "INTERNAL"
	CodeIllegal    = "ILLEGAL_STATE"
	// CodePluginFailed: a plugin run made on request failed (timeout,
	// non-zero exit, invalid output); the message says why.
	CodePluginFailed = "PLUGIN_FAILED"
)

// AgentUpdateRequest asks the agent to update itself (POST /v1/agent/update).
type AgentUpdateRequest struct {
	// Version is the release to run, from the component repository.
	Version string `json:"version"`
	// Timeout is how long the new release has to become healthy, as a Go
	// duration ("2m"); "" = the agent's default.
	Timeout string `json:"timeout,omitempty"`
}

// AgentUpdate is the agent's update of itself: where it stands, or how it
// ended.
type AgentUpdate struct {
	ID    string `json:"id"`
	JobID string `json:"job_id,omitempty"`
	From  string `json:"from"`
	To    string `json:"to"`
	// Phase: staging, trial, reverting (in progress); committed, failed
	// (ended).
	Phase      string    `json:"phase"`
	Finished   bool      `json:"finished"`
	RolledBack bool      `json:"rolled_back"`
	Detail     string    `json:"detail,omitempty"`
	ErrorCode  string    `json:"error_code,omitempty"`
	Deadline   time.Time `json:"deadline,omitzero"`
	Requested  time.Time `json:"requested"`
	Updated    time.Time `json:"updated"`
	// Running is the version of the agent that answered.
	Running string `json:"running"`
}
