package supervisor

import (
	"context"
	"errors"
	"fmt"

	"github.com/looplab/fsm"
)

// State is where a component is in its life.
type State int

// The component states. The zero value is StateNew.
const (
	StateNew       State = iota // recipe known, install script not yet run
	StateInstalled              // installed, never started or waiting to be
	StateStarting               // the process is being started
	StateRunning                // the process runs and its health check (if any) passes
	StateDegraded               // the process runs but its health check fails
	StateStopping               // the process was asked to stop
	StateStopped                // stopped on purpose: by hand, by a dependency or by shutdown
	StateFinished               // exited 0 and is not to be restarted
	StateErrored                // failed or exited unexpectedly; retried under the restart policy
	StateBroken                 // restarted more than max_restarts within its window
)

var stateNames = [...]string{
	StateNew:       "NEW",
	StateInstalled: "INSTALLED",
	StateStarting:  "STARTING",
	StateRunning:   "RUNNING",
	StateDegraded:  "DEGRADED",
	StateStopping:  "STOPPING",
	StateStopped:   "STOPPED",
	StateFinished:  "FINISHED",
	StateErrored:   "ERRORED",
	StateBroken:    "BROKEN",
}

// String returns the state's name ("RUNNING").
func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("State(%d)", int(s))
	}
	return stateNames[s]
}

// MarshalText writes the state's name, so JSON shows "RUNNING".
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ParseState returns the state named name ("RUNNING").
func ParseState(name string) (State, error) {
	for i, n := range stateNames {
		if n == name {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("unknown component state %q", name)
}

// Active reports whether a process may be alive in this state, so that a
// stop has something to do.
func (s State) Active() bool {
	return s == StateStarting || s == StateRunning || s == StateDegraded || s == StateStopping
}

// Settled reports whether the component is done trying for now: it will not
// change state again by itself except through a pending restart (ERRORED).
func (s State) Settled() bool {
	switch s {
	case StateRunning, StateDegraded, StateStopped, StateFinished, StateErrored, StateBroken:
		return true
	}
	return false
}

// Machine events: the names of the looplab/fsm events that move a
// component between states. Only the core fires them.
const (
	evInstalled     = "installed"      // install script succeeded (or there is none)
	evInstallFailed = "install_failed" // install script failed
	evReinstall     = "reinstall"      // start asked for after a failed install
	evStart         = "start"          // start the process
	evStarted       = "started"        // the process was started
	evStartFailed   = "start_failed"   // the process could not be started
	evUnhealthy     = "unhealthy"      // a health check failed
	evHealthy       = "healthy"        // a health check passed again
	evStop          = "stop"           // ask the process to stop
	evHalt          = "halt"           // stop with no process alive
	evStopped       = "stopped"        // the process ended after being asked to
	evFailed        = "failed"         // the process ended unexpectedly, or was killed as unhealthy
	evFinished      = "finished"       // the process exited 0 and is not to be restarted
	evBreak         = "break"          // too many restarts within the window
)

func names(states ...State) []string {
	out := make([]string, len(states))
	for i, s := range states {
		out[i] = s.String()
	}
	return out
}

// transitions is the whole state graph. Anything not listed is an illegal
// event, reported as an error wrapping ErrIllegal that names the current
// state. Built once; looplab/fsm only reads it.
var transitions = fsm.Events{
	{Name: evInstalled, Src: names(StateNew), Dst: StateInstalled.String()},
	{Name: evInstallFailed, Src: names(StateNew), Dst: StateErrored.String()},
	{Name: evReinstall, Src: names(StateErrored, StateBroken, StateStopped), Dst: StateNew.String()},
	{Name: evStart, Src: names(StateInstalled, StateStopped, StateFinished, StateErrored, StateBroken), Dst: StateStarting.String()},
	{Name: evStarted, Src: names(StateStarting), Dst: StateRunning.String()},
	{Name: evStartFailed, Src: names(StateStarting), Dst: StateErrored.String()},
	{Name: evUnhealthy, Src: names(StateRunning), Dst: StateDegraded.String()},
	{Name: evHealthy, Src: names(StateDegraded), Dst: StateRunning.String()},
	{Name: evStop, Src: names(StateRunning, StateDegraded), Dst: StateStopping.String()},
	{Name: evHalt, Src: names(StateInstalled, StateFinished, StateErrored, StateBroken), Dst: StateStopped.String()},
	{Name: evStopped, Src: names(StateStopping), Dst: StateStopped.String()},
	{Name: evFailed, Src: names(StateRunning, StateDegraded, StateStopping), Dst: StateErrored.String()},
	{Name: evFinished, Src: names(StateRunning, StateDegraded), Dst: StateFinished.String()},
	{Name: evBreak, Src: names(StateErrored), Dst: StateBroken.String()},
}

// Transition is one state change of one component.
type Transition struct {
	From, To State
	Reason   string
}

// machine is one component's state, moved by looplab/fsm: each event goes
// through a machine made for it at the current state, and the component
// keeps only the state it ends in. A looplab/fsm machine is maps of every
// transition, about 2 KiB, and a component lives through a handful of
// events between long idle stretches; kept per component, the machines
// were a tenth of what a component cost the agent. The callback only
// records the transition; the core turns records into effects.
type machine struct {
	state   State
	pending []Transition
}

func newMachine(initial State) *machine { return &machine{state: initial} }

// current returns the machine's state.
func (m *machine) current() State { return m.state }

// fire moves the machine by event. An event the current state does not
// allow returns an error wrapping ErrIllegal that names the event and the
// state; looplab/fsm's own error types never leave the package.
func (m *machine) fire(ctx context.Context, event, reason string) error {
	f := fsm.NewFSM(m.state.String(), transitions, fsm.Callbacks{
		"enter_state": func(_ context.Context, e *fsm.Event) {
			from, _ := ParseState(e.Src)
			to, _ := ParseState(e.Dst)
			reason := ""
			if len(e.Args) > 0 {
				reason, _ = e.Args[0].(string)
			}
			m.pending = append(m.pending, Transition{From: from, To: to, Reason: reason})
		},
	})
	err := f.Event(ctx, event, reason)
	if err == nil {
		s, perr := ParseState(f.Current())
		if perr != nil {
			return fmt.Errorf("%s in state %s: %v", event, m.state, perr) // unreachable: the machine only holds names from stateNames
		}
		m.state = s
		return nil
	}
	var invalid fsm.InvalidEventError
	if errors.As(err, &invalid) {
		return &illegalError{command: event, state: m.state}
	}
	return fmt.Errorf("%s in state %s: %v", event, m.state, err) // not %w: fsm's types stay inside
}

// take returns and clears the transitions recorded since the last call.
func (m *machine) take() []Transition {
	out := m.pending
	m.pending = nil
	return out
}
