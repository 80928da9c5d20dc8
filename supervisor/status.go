package supervisor

import (
	"time"

	"github.com/keystone-edge/keystone/recipes"
)

// Status is one component as the local API shows it (SPEC §7). A Status is
// a value: it never changes after it is returned.
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
