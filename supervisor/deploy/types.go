package deploy

import "time"

// Status is where a deployment stands.
type Status string

// Deployment statuses; the store keeps the same words.
const (
	StatusQueued     Status = "QUEUED"
	StatusInProgress Status = "IN_PROGRESS"
	StatusSucceeded  Status = "SUCCEEDED"
	StatusFailed     Status = "FAILED"
	StatusCanceled   Status = "CANCELED"
)

// Finished reports whether s is final: nothing more happens to the
// deployment.
func (s Status) Finished() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusCanceled
}

// StepName names one checkpointed step (see the Step constants).
type StepName string

// StepStatus is how far a step got.
type StepStatus string

// Step statuses: every step is appended as started, then done or failed
// (validate, plan, commit and the end of rollback are appended done only).
const (
	StepStarted StepStatus = "started"
	StepDone    StepStatus = "done"
	StepFailed  StepStatus = "failed"
)

// PlanAction is what a deployment does to one component.
type PlanAction string

// Deployment is one recorded deployment as the engine answers it.
type Deployment struct {
	ID         string
	Status     Status
	RolledBack bool   // a failure restored the previous set
	Error      string // "" unless FAILED or CANCELED
	ErrorCode  Code   // "" unless FAILED or CANCELED
	CreatedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt time.Time  // zero until finished
	Plan       []PlanItem // nil until the plan step is done
	Steps      []Step     // in order; the plan step's Detail is a summary
	// WaitingFor says, while unfinished, what the deployment waits on, and
	// Since since when; "" and zero once finished.
	WaitingFor string
	Since      time.Time
}

// Step is one checkpoint of a deployment.
type Step struct {
	Seq       int64
	Name      StepName
	Component string // "" for a step of the whole deployment
	Status    StepStatus
	Detail    string
	At        time.Time
}

// PlanItem is one component's part in a deployment. The plan step's
// detail records the plan as JSON under these names, which every agent has
// written: data folders of older agents must stay readable, so they never
// change.
type PlanItem struct {
	Component   string     `json:"component"`
	Action      PlanAction `json:"action"`
	FromVersion string     `json:"from_version,omitempty"` // "" when added
	ToVersion   string     `json:"to_version,omitempty"`   // "" when removed
	Reason      string     `json:"reason,omitempty"`
}

// Accepted answers Submit and Rollback: the deployment's id and its plan
// against the current set at the time.
type Accepted struct {
	ID   string
	Plan []PlanItem
	// Existing: the id was submitted before with the same manifest; nothing
	// new was queued and Status is where that deployment stands.
	Existing bool
	Status   Status
	// RollbackTo is the deployment a rollback applies again.
	RollbackTo string
}
