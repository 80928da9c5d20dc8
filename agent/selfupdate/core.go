// Package selfupdate decides the agent's update of itself: given the
// recorded update (State), what just happened (Event) and the time, Step
// returns the new record and what to do (Actions). It does no I/O and
// reads no clock; the agent carries the actions out (fetching the
// release, saving the record, executing a release in place, switching the
// current link, reporting) and feeds back what happened.
//
// An update goes: requested → staged (the release is fetched, verified
// and installed beside the running one) → trial (the record is saved with
// a deadline, then the new release is executed in place and takes the
// components over) → committed once the new release is healthy, or
// reverted: by the new release itself at the deadline (it executes the
// previous release in place), or by the previous release when it boots
// and finds the trial unfinished (the new one crashed, hung and was
// killed, or could not be executed at all). The record is saved before
// every action that could lose the process, so a crash at any moment ends
// on exactly one release.
package selfupdate

import (
	"fmt"
	"time"
)

// Phase is where an update stands.
type Phase string

const (
	PhaseNone      Phase = ""          // no update yet
	PhaseStaging   Phase = "staging"   // fetching and installing the release
	PhaseTrial     Phase = "trial"     // the new release runs, not committed
	PhaseReverting Phase = "reverting" // the new release gave up: the previous one is executed
	PhaseCommitted Phase = "committed" // the new release is current
	PhaseFailed    Phase = "failed"    // ended without the new release
)

// Finished reports whether the update has ended.
func (p Phase) Finished() bool {
	return p == PhaseNone || p == PhaseCommitted || p == PhaseFailed
}

// State is the recorded update.
type State struct {
	ID    string `json:"id"`               // the request's id (a job id, or a local one)
	JobID string `json:"job_id,omitempty"` // the MQTT job, when a job asked
	From  string `json:"from"`             // version that ran when it was asked for
	To    string `json:"to"`               // version asked for
	// FromExe and ToExe are the executables of the two releases.
	FromExe string `json:"from_exe"`
	ToExe   string `json:"to_exe,omitempty"`
	Phase   Phase  `json:"phase"`
	// Timeout is how long the new release has to become healthy.
	Timeout  time.Duration `json:"timeout"`
	Deadline time.Time     `json:"deadline,omitzero"`
	// Tries counts executions of the new release (at most one: a
	// release that failed once is not tried again by the same update).
	Tries      int       `json:"tries"`
	RolledBack bool      `json:"rolled_back"`
	Detail     string    `json:"detail,omitempty"`
	Code       string    `json:"error_code,omitempty"`
	Requested  time.Time `json:"requested"`
	Updated    time.Time `json:"updated"`
}

// EventKind says what happened.
type EventKind int

const (
	// Request: update to Version (ID, JobID, Timeout, Exe = the running
	// executable) while Running runs.
	Request EventKind = iota
	// Staged: the release is installed; Exe is its executable.
	Staged
	// StageFailed: it could not be fetched, verified or installed (Err,
	// Code).
	StageFailed
	// Booted: this image started, as Running; ExecFailed says the
	// previous image meant to execute another release and could not.
	Booted
	// Healthy: the running release passed its health check.
	Healthy
	// Tick: time passed.
	Tick
	// Installed: release Version is already installed (a package put it
	// there and named it current) and is to run (ID, Timeout, Exe = its
	// executable, FromExe = the running executable, Running): a trial as
	// after a fetch, with current pointed back at the running release
	// first, so that a new release that dies is not started again.
	Installed
)

var eventNames = [...]string{"request", "staged", "stage-failed", "booted", "healthy", "tick", "installed"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one thing that happened, at At.
type Event struct {
	Kind    EventKind
	At      time.Time
	ID      string        // Request
	JobID   string        // Request
	Version string        // Request: the version asked for
	Running string        // Request, Booted: the version of the running image
	Exe     string        // Request: the running executable; Staged, Installed: the new one
	FromExe string        // Installed: the running executable
	Timeout time.Duration // Request
	Err     string        // StageFailed; Booted: ExecFailed
	Code    string        // StageFailed: an error code for the status
}

// ActionKind says what to do.
type ActionKind int

const (
	// Save: write State durably, before the actions after it.
	Save ActionKind = iota
	// Fetch: fetch, verify and install release Version, then feed Staged
	// or StageFailed.
	Fetch
	// Exec: execute Exe in place, handing the components over.
	Exec
	// SwitchCurrent: point the current link at release Version.
	SwitchCurrent
	// Report: publish the update's status (State says which).
	Report
	// Cleanup: remove releases other than the current and the previous.
	Cleanup
	// Refuse: answer the request with Err; nothing changed.
	Refuse
)

var actionNames = [...]string{"save", "fetch", "exec", "switch-current", "report", "cleanup", "refuse"}

func (k ActionKind) String() string {
	if int(k) < len(actionNames) {
		return actionNames[k]
	}
	return fmt.Sprintf("ActionKind(%d)", int(k))
}

// Action is one thing to do.
type Action struct {
	Kind    ActionKind
	Version string // Fetch, SwitchCurrent
	Exe     string // Exec
	Err     string // Refuse
}

// DefaultTimeout is how long a new release has to become healthy when the
// request names no time.
const DefaultTimeout = 2 * time.Minute

// Step is the decision: the state after ev, and the actions to carry out
// in order.
func Step(s State, ev Event) (State, []Action) {
	switch ev.Kind {
	case Request:
		return request(s, ev)
	case Staged:
		if s.Phase != PhaseStaging {
			return s, nil
		}
		s.Phase, s.ToExe, s.Tries = PhaseTrial, ev.Exe, s.Tries+1
		s.Deadline = ev.At.Add(s.Timeout)
		s.Updated = ev.At
		s.Detail = "executing release " + s.To
		return s, []Action{{Kind: Save}, {Kind: Report}, {Kind: Exec, Exe: s.ToExe}}
	case StageFailed:
		if s.Phase != PhaseStaging {
			return s, nil
		}
		return end(s, ev.At, PhaseFailed, false, ev.Code, "release "+s.To+" not installed: "+ev.Err)
	case Booted:
		return booted(s, ev)
	case Installed:
		return installed(s, ev)
	case Healthy:
		if s.Phase != PhaseTrial {
			return s, nil
		}
		s, acts := end(s, ev.At, PhaseCommitted, false, "", "release "+s.To+" is healthy and current")
		return s, append([]Action{{Kind: SwitchCurrent, Version: s.To}}, append(acts, Action{Kind: Cleanup})...)
	case Tick:
		if s.Phase != PhaseTrial || ev.At.Before(s.Deadline) {
			return s, nil
		}
		s.Phase, s.Updated = PhaseReverting, ev.At
		s.Detail = fmt.Sprintf("release %s not healthy within %s; going back to %s", s.To, s.Timeout, s.From)
		return s, []Action{{Kind: Save}, {Kind: Exec, Exe: s.FromExe}}
	}
	return s, nil
}

func request(s State, ev Event) (State, []Action) {
	if !s.Phase.Finished() {
		return s, []Action{{Kind: Refuse, Err: fmt.Sprintf("an update to %s is in progress (%s)", s.To, s.Phase)}}
	}
	timeout := ev.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	n := State{ID: ev.ID, JobID: ev.JobID, From: ev.Running, To: ev.Version, FromExe: ev.Exe,
		Timeout: timeout, Requested: ev.At, Updated: ev.At}
	if ev.Version == ev.Running {
		n.Phase, n.Detail = PhaseCommitted, "release "+ev.Version+" is already running"
		return n, []Action{{Kind: Save}, {Kind: Report}}
	}
	n.Phase, n.Detail = PhaseStaging, "fetching release "+ev.Version
	return n, []Action{{Kind: Save}, {Kind: Report}, {Kind: Fetch, Version: ev.Version}}
}

// installed starts the trial of a release a package installed.
func installed(s State, ev Event) (State, []Action) {
	if !s.Phase.Finished() {
		return s, []Action{{Kind: Refuse, Err: fmt.Sprintf("an update to %s is in progress (%s)", s.To, s.Phase)}}
	}
	timeout := ev.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	n := State{ID: ev.ID, From: ev.Running, To: ev.Version, FromExe: ev.FromExe, ToExe: ev.Exe, Phase: PhaseTrial,
		Timeout: timeout, Deadline: ev.At.Add(timeout), Tries: 1, Requested: ev.At, Updated: ev.At,
		Detail: "executing release " + ev.Version + ", installed beside " + ev.Running}
	return n, []Action{{Kind: SwitchCurrent, Version: ev.Running}, {Kind: Save}, {Kind: Report}, {Kind: Exec, Exe: ev.Exe}}
}

// booted decides what an image finds at its start.
func booted(s State, ev Event) (State, []Action) {
	switch {
	case s.Phase == PhaseStaging:
		// The agent stopped while fetching: nothing was executed.
		return end(s, ev.At, PhaseFailed, false, "INTERRUPTED", "the agent restarted while fetching release "+s.To)
	case s.Phase == PhaseTrial && ev.Running == s.To && ev.Err == "":
		return s, nil // on trial: Healthy or the deadline decides
	case s.Phase == PhaseTrial && ev.Running == s.To:
		// The exec of the previous release failed on the way back.
		return end(s, ev.At, PhaseFailed, false, "REVERT_FAILED", "could not go back to "+s.From+": "+ev.Err)
	case s.Phase == PhaseTrial || s.Phase == PhaseReverting:
		why := s.Detail
		switch {
		case ev.Err != "":
			why = "release " + s.To + " could not be executed: " + ev.Err
		case s.Phase == PhaseTrial:
			why = "release " + s.To + " did not come up (it exited, crashed or hung and was killed)"
		}
		if ev.Running != s.From {
			return end(s, ev.At, PhaseFailed, false, "REVERT_FAILED", why+"; now running "+ev.Running)
		}
		return end(s, ev.At, PhaseFailed, true, "AGENT_UPDATE_FAILED", why+"; back on "+s.From)
	}
	return s, nil
}

// end finishes the update.
func end(s State, at time.Time, p Phase, rolledBack bool, code, detail string) (State, []Action) {
	s.Phase, s.RolledBack, s.Code, s.Detail, s.Updated = p, rolledBack, code, detail, at
	return s, []Action{{Kind: Save}, {Kind: Report}}
}
