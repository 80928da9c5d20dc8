package supervisor

import (
	"fmt"
	"time"

	"github.com/keystone-edge/keystone/recipes"
)

// Status is one component as the supervisor knows it (the local API shows
// it through its own wire type). A Status is a value: it never changes
// after it is returned.
type Status struct {
	Name       string       `json:"name"`
	Version    string       `json:"version"`
	Kind       recipes.Kind `json:"kind"`
	State      State        `json:"state"`
	Pid        int          `json:"pid"`      // 0 when no process runs
	Restarts   int          `json:"restarts"` // since created or last restarted by hand
	Since      time.Time    `json:"since"`    // time of the last transition
	Health     Health       `json:"health"`   // "" when there is no health check
	LastError  string       `json:"last_error"`
	CPUPercent float64      `json:"cpu_percent"` // 100 = one full core; 0 when unknown
	RSSBytes   uint64       `json:"rss_bytes"`   // 0 when unknown
	// Retrying is true in ERRORED while a restart is pending.
	Retrying bool `json:"-"`
	// Failure is the kind of the last failure, as a fact callers branch
	// on (LastError is for people): the one LastError describes, or
	// FailureDependency when the supervisor since stopped the process for
	// a hard dependency, which leaves LastError alone (a stop is never the
	// component's own failure). FailureNone while the component has never
	// failed. Like LastError it stays after the component recovers.
	Failure FailureKind `json:"failure,omitempty"`
	// Generation is the run: it changes at every start of the component's
	// process (0 before the first), so the same Pid and Generation at two
	// looks mean the same process stayed up.
	Generation uint64 `json:"-"`
	// HealthDetail is what the last failed health check (or plugin run)
	// said while Health is unhealthy: the evidence for a DEGRADED state.
	HealthDetail string `json:"health_detail,omitempty"`
	// WaitingFor says why a component that is wanted but down does not
	// start yet ("hard dependency com.example.db is STOPPED"); "" otherwise.
	WaitingFor string `json:"waiting_for,omitempty"`
}

// FailureKind is why a component last failed. The zero value is
// FailureNone.
type FailureKind int

// The failure kinds.
const (
	// FailureNone: the component has not failed.
	FailureNone FailureKind = iota
	// FailureInstall: the install script failed or timed out.
	FailureInstall
	// FailureStart: the process could not be started (missing program, bad
	// run_as, busy cgroup).
	FailureStart
	// FailureExited: the process exited with a non-zero status, or at all
	// when the restart policy (always) says it must run, or could not be
	// waited for.
	FailureExited
	// FailureSignaled: the process was killed by a signal it did not ask
	// for (not a stop by the supervisor).
	FailureSignaled
	// FailureOOM: the kernel's out-of-memory killer ended the process.
	FailureOOM
	// FailureUnhealthy: the health check failed failure_threshold times in
	// a row and the supervisor killed the process.
	FailureUnhealthy
	// FailureDependency: the supervisor stopped the process because a hard
	// dependency went down (the component is STOPPED, not ERRORED).
	FailureDependency
)

var failureNames = [...]string{
	FailureNone:       "none",
	FailureInstall:    "install",
	FailureStart:      "start",
	FailureExited:     "exited",
	FailureSignaled:   "signaled",
	FailureOOM:        "oom",
	FailureUnhealthy:  "unhealthy",
	FailureDependency: "dependency",
}

// String names the failure kind ("oom").
func (k FailureKind) String() string {
	if k < 0 || int(k) >= len(failureNames) {
		return fmt.Sprintf("FailureKind(%d)", int(k))
	}
	return failureNames[k]
}

// MarshalText writes the kind's name, so JSON shows "oom".
func (k FailureKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// failureOf is the kind of failure an exit is.
func failureOf(e ExitStatus) FailureKind {
	switch {
	case e.OOM:
		return FailureOOM
	case e.Err == nil && e.Signal != "":
		return FailureSignaled
	}
	return FailureExited
}

// Ready reports whether the component counts as up for its dependents and
// for a deployment's health wait: RUNNING, and healthy if it has a check.
func (s Status) Ready() bool {
	return s.State == StateRunning && (s.Health == HealthNone || s.Health == HealthHealthy)
}

// Failed reports whether the component has stopped trying: BROKEN, or
// ERRORED with no restart pending.
func (s Status) Failed() bool {
	return s.State == StateBroken || (s.State == StateErrored && !s.Retrying)
}

// Usage is what one process uses.
type Usage struct {
	CPUPercent float64 // since the previous sample; 100 = one full core
	RSSBytes   uint64
}

// Sampler measures processes for Snapshot.
type Sampler interface {
	// Sample measures the given live pids; a pid it cannot read is left
	// out. Pids not asked for may be forgotten.
	Sample(pids []int) map[int]Usage
}
