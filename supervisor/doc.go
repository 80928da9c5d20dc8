// Package supervisor drives components through their state machines: one
// actor goroutine per component, ordered by the dependencies between them,
// with restart policies and health checks.
//
// The decisions are pure and tested without processes or clocks: Core is
// one component's state machine (looplab/fsm) with its restart policy
// (Restarts) and health counting, fed inputs stamped with their time and
// answering with effects; reconcile decides which components to start and
// stop so that dependencies are respected. Around them, an Actor owns one
// component's core, process handle and timers, and a Supervisor owns the
// set of actors.
//
// It decides; others act. Component processes are started and stopped by
// a Launcher (ProcessLauncher wraps package runner), processes are recorded
// through a ProcessRecorder (*store.Store) and events go to a Publisher
// (package events); the package never speaks SQL. The only commands it runs
// itself are install scripts and cmd: health checks, under the same rule as
// the runner's: with security.allow_root = false none runs as root
// (ShellUser).
//
// See docs/supervisor.md for the behaviour in detail.
package supervisor
