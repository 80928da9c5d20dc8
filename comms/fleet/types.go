package fleet

import (
	"errors"
	"fmt"
	"time"

	"github.com/keystone-edge/keystone/comms/message"
)

// ErrIllegal is returned by Core.Step for an event the rollout's phase
// does not allow (a second start, a resume of a finished rollout); the
// error names the event and the phase.
var ErrIllegal = errors.New("fleet: event not allowed")

// ErrConfig is wrapped by New for a rollout that cannot run as given.
var ErrConfig = errors.New("fleet: invalid rollout")

// Outcome is where one device stands in a rollout.
type Outcome string

const (
	// Pending: no job published yet.
	Pending Outcome = "PENDING"
	// Published: its job was published; no final status yet.
	Published Outcome = "PUBLISHED"
	// Soaking: its job SUCCEEDED; the device must stay healthy for the soak.
	Soaking Outcome = "SOAKING"
	// Succeeded: its job SUCCEEDED and the device stayed healthy for the soak.
	Succeeded Outcome = "SUCCEEDED"
	// Failed: its job FAILED, or the device turned unhealthy while soaking.
	Failed Outcome = "FAILED"
	// Rejected: the device refused its job.
	Rejected Outcome = "REJECTED"
	// TimedOut: no final status within the device timeout of publishing,
	// or no full soak within the device timeout of its success.
	TimedOut Outcome = "TIMED_OUT"
	// Offline: offline when its ring started. Not a failure: the job is
	// published all the same (retained) and a later final status is
	// recorded.
	Offline Outcome = "OFFLINE"
	// Canceled: the rollout was canceled before its job went out, or the
	// device reported its job CANCELED.
	Canceled Outcome = "CANCELED"
)

// String returns the outcome's name.
func (o Outcome) String() string { return string(o) }

// failure reports whether the outcome counts against the failure budget.
func (o Outcome) failure() bool { return o == Failed || o == Rejected || o == TimedOut }

// finished reports whether the device has finished for the failure
// budget: succeeded after its soak, or failed.
func (o Outcome) finished() bool { return o == Succeeded || o.failure() }

// settled reports whether the device no longer holds its ring back.
func (o Outcome) settled() bool { return o.finished() || o == Offline || o == Canceled }

// Outcomes lists every outcome in the order views show them.
var Outcomes = []Outcome{Pending, Published, Soaking, Succeeded, Failed, Rejected, TimedOut, Offline, Canceled}

// Phase is where the rollout as a whole stands.
type Phase string

const (
	PhaseNew       Phase = "NEW"       // created, not started
	PhaseRunning   Phase = "RUNNING"   // publishing ring by ring
	PhasePaused    Phase = "PAUSED"    // no new job and no new ring until resumed
	PhaseSucceeded Phase = "SUCCEEDED" // every ring finished
	PhaseHalted    Phase = "HALTED"    // the failure budget was exceeded
	PhaseCanceled  Phase = "CANCELED"  // canceled by the operator
)

// String returns the phase's name.
func (p Phase) String() string { return string(p) }

// over reports whether the rollout has finished: no more jobs of its own.
func (p Phase) over() bool { return p == PhaseSucceeded || p == PhaseHalted || p == PhaseCanceled }

// HaltPolicy says what a halt does besides stopping new jobs.
type HaltPolicy string

const (
	// HaltPause stops: no further jobs; devices keep what they have.
	HaltPause HaltPolicy = "pause"
	// HaltRollback also sends each device that took the new deployment
	// its previous one.
	HaltRollback HaltPolicy = "rollback"
)

// Template is the content of a job, without its addressing: a deployment
// manifest, or an agent version.
type Template struct {
	// Kind is message.KindDeployment or message.KindAgentUpdate.
	Kind string `json:"kind"`
	// Manifest is the deployment manifest's TOML text (KindDeployment).
	Manifest string `json:"manifest,omitempty"`
	// Version is the agent version (KindAgentUpdate).
	Version string `json:"version,omitempty"`
}

// Config is one rollout as the operator asked for it, with its targets
// resolved.
type Config struct {
	// ID names the rollout; job ids are made from it, so it must be a
	// valid job id itself.
	ID string `json:"id"`
	// Job is what every target gets.
	Job Template `json:"job"`
	// Targets are the device ids, resolved by the caller (groups from the
	// retained states). Duplicates are dropped. May be empty: the rollout
	// then succeeds at once.
	Targets []string `json:"targets"`
	// Rings are cumulative fractions of the targets, increasing, the last
	// 1; e.g. 0.01, 0.1, 1. Empty means one ring of every target.
	Rings []float64 `json:"rings"`
	// Rate is the most jobs published per minute; zero means no limit.
	Rate int `json:"rate"`
	// Soak is how long a device must stay healthy after its job
	// SUCCEEDED to count as succeeded; zero means it counts at once.
	Soak time.Duration `json:"soak"`
	// DeviceTimeout is how long a device has, from its job's publishing,
	// to send a final status; and again, from its success, to complete
	// its soak. Zero means no timeout.
	DeviceTimeout time.Duration `json:"device_timeout"`
	// MaxFailureRate is the share of failures (FAILED, REJECTED,
	// TIMED_OUT) among a ring's finished devices above which the rollout
	// halts, in [0, 1].
	MaxFailureRate float64 `json:"max_failure_rate"`
	// MinExecuted is how many of a ring's devices must have finished
	// before its failure rate is judged; zero means from the first.
	MinExecuted int `json:"min_executed"`
	// OnHalt says what a halt does; "" means HaltPause.
	OnHalt HaltPolicy `json:"on_halt"`
	// Previous is what each device ran before (its last deployment), the
	// job HaltRollback sends it. A device missing here has no known
	// previous deployment and is not rolled back (ActionNoRollback).
	Previous map[string]Template `json:"previous,omitempty"`
	// JobTTL is how long a published job stays valid (its expires_at):
	// long enough for an offline device to come back and find it. Zero
	// means 7 days.
	JobTTL time.Duration `json:"job_ttl"`
}

// EventKind says what happened.
type EventKind int

const (
	// EventStart starts the rollout: its first ring begins.
	EventStart EventKind = iota
	// EventTick lets time pass: publishes due under the rate, timeouts,
	// soaks completed. Send one every second or so.
	EventTick
	// EventJobStatus is a status from Device for JobID: Status (a
	// message.Status* value), ErrorCode, Detail.
	EventJobStatus
	// EventDeviceState is Device's retained state: Online, Healthy (every
	// component RUNNING). Send every target's before EventStart.
	EventDeviceState
	// EventPause stops new jobs and new rings until EventResume.
	EventPause
	// EventResume continues a paused rollout.
	EventResume
	// EventCancel cancels the rollout: cancel jobs for jobs in flight,
	// nothing for the devices not reached.
	EventCancel
	// EventRestart is the first event of a Core made by Restore: the
	// caller restarted. It publishes again, identically, every job
	// recorded as published that no status has acknowledged.
	EventRestart
)

var eventNames = [...]string{"start", "tick", "job-status", "device-state", "pause", "resume", "cancel", "restart"}

// String names the event kind.
func (k EventKind) String() string {
	if k < 0 || int(k) >= len(eventNames) {
		return fmt.Sprintf("EventKind(%d)", int(k))
	}
	return eventNames[k]
}

// Event is one input of Core.Step. At is when it happened: the core never
// reads a clock, and At must not go backwards.
type Event struct {
	Kind   EventKind
	At     time.Time
	Device string // EventJobStatus, EventDeviceState
	// EventJobStatus: the job, its status and, for a failure, why.
	JobID     string
	Status    string
	ErrorCode string
	Detail    string
	// EventDeviceState: online, and healthy (every component RUNNING).
	Online  bool
	Healthy bool
	// Reason is why, for EventPause and EventCancel.
	Reason string
}

// ActionKind says what the caller must do or record.
type ActionKind int

const (
	// ActionPublish: sign and publish Job, retained, to Device; the
	// device is now PUBLISHED (or stays OFFLINE).
	ActionPublish ActionKind = iota
	// ActionCancelJob: publish Job, a cancel job, to Device.
	ActionCancelJob
	// ActionRollback: publish Job, the device's previous deployment, to
	// Device.
	ActionRollback
	// ActionNoRollback: Device took the new deployment but its previous
	// one is unknown; Reason says so. Nothing to publish.
	ActionNoRollback
	// ActionOutcome: Device went From → To; ErrorCode and Detail say why
	// when To is a failure.
	ActionOutcome
	// ActionRingStarted: Ring (0-based) started.
	ActionRingStarted
	// ActionRingFinished: every device of Ring settled.
	ActionRingFinished
	// ActionHalted: the failure budget was exceeded; Reason says how.
	ActionHalted
	// ActionFinished: the rollout ended in Phase; Reason says why.
	ActionFinished
)

var actionNames = [...]string{"publish", "cancel-job", "rollback", "no-rollback", "outcome",
	"ring-started", "ring-finished", "halted", "finished"}

// String names the action kind.
func (k ActionKind) String() string {
	if k < 0 || int(k) >= len(actionNames) {
		return fmt.Sprintf("ActionKind(%d)", int(k))
	}
	return actionNames[k]
}

// Action is one thing the caller must do or record. Step returns them in
// order; the caller persists the Snapshot taken after Step before it
// publishes anything, so that a crash can lose a publish (sent again on
// EventRestart) but never forget one that went out.
type Action struct {
	Kind      ActionKind
	Device    string
	Job       *message.Job // ActionPublish, ActionCancelJob, ActionRollback: unsigned
	From, To  Outcome      // ActionOutcome
	ErrorCode string       // ActionOutcome
	Detail    string       // ActionOutcome
	Ring      int          // ActionRingStarted, ActionRingFinished
	Phase     Phase        // ActionFinished
	Reason    string       // ActionNoRollback, ActionHalted, ActionFinished
}
