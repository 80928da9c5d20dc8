package cgroup

import (
	"errors"
	"fmt"
	"strconv"
)

// Names of the limits, as a recipe's [resources] table spells them.
const (
	LimitCPUQuota = "cpu_quota"
	LimitMemory   = "memory_limit"
	LimitPids     = "pids_limit"
)

// cpuPeriodMicros is the CFS period a cpu_quota percentage is a share of.
const cpuPeriodMicros = 100_000

// Limits are the resource limits of one group. Zero means no limit.
type Limits struct {
	// CPUQuotaPercent is CPU time in percent of one CPU (150 = one and a
	// half CPUs); 0 = unlimited.
	CPUQuotaPercent int
	// MemoryBytes caps memory (and, where the host accounts it, memory plus
	// swap, so that swap cannot be used to get around it); 0 = unlimited.
	// Going past it gets a process of the group OOM-killed.
	MemoryBytes int64
	// Pids caps the number of tasks (processes and threads) in the group;
	// 0 = unlimited.
	Pids int64
}

// requested lists the limits that are set, in a fixed order.
func (l Limits) requested() []string {
	var out []string
	if l.CPUQuotaPercent > 0 {
		out = append(out, LimitCPUQuota)
	}
	if l.MemoryBytes > 0 {
		out = append(out, LimitMemory)
	}
	if l.Pids > 0 {
		out = append(out, LimitPids)
	}
	return out
}

// unapplied reports every requested limit as not enforced, for err.
func (l Limits) unapplied(err error) []Unapplied {
	var out []Unapplied
	for _, name := range l.requested() {
		out = append(out, Unapplied{Limit: name, Value: l.value(name), Err: err})
	}
	return out
}

// value renders one limit for a message.
func (l Limits) value(limit string) string {
	switch limit {
	case LimitCPUQuota:
		return strconv.Itoa(l.CPUQuotaPercent) + "%"
	case LimitMemory:
		return strconv.FormatInt(l.MemoryBytes, 10) + " bytes"
	case LimitPids:
		return strconv.FormatInt(l.Pids, 10)
	}
	return "?"
}

// ErrUnavailable says the host has no usable cgroup hierarchy for a limit:
// no cgroup mount at all, cgroups turned off in the configuration, or the
// controller the limit needs is missing.
var ErrUnavailable = errors.New("cgroup: not available")

// ErrBusy says a group that is about to be created still holds processes,
// left over from an earlier run: they must be stopped first.
var ErrBusy = errors.New("cgroup: group still has processes")

// Unapplied is a requested limit the host could not enforce. The component
// runs without it; the caller is expected to report it.
type Unapplied struct {
	Limit string // LimitCPUQuota, LimitMemory or LimitPids
	Value string // the requested value, for the message
	Err   error  // why; errors.Is(Err, ErrUnavailable) when the host lacks the controller
}

// Error says which limit is not enforced and why.
func (u Unapplied) Error() string {
	return fmt.Sprintf("%s=%s not enforced: %v", u.Limit, u.Value, u.Err)
}

// Unwrap returns the reason.
func (u Unapplied) Unwrap() error { return u.Err }
