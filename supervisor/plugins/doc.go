// Package plugins schedules metrics plugins (components of kind = plugin):
// it is the supervisor's Launcher for them, and a launched plugin's Handle
// is its schedule rather than a process. Each plugin runs every interval,
// delayed by a random jitter, never twice at once: a run that comes due
// while the previous one still runs is skipped and counted. A plugin that
// keeps failing stays scheduled (runs are cheap to retry) and its Status
// shows the failures; its values go stale on /metrics instead.
//
// The package decides when a plugin runs and carries its state from one run
// to the next through the store, so that it survives agent restarts; how a
// run works (the process or module, the contract, the mapping) and how
// values are exported is package runner/plugin's. It knows nothing of
// deployments, dependencies or restart policy.
//
// The timing is a pure value (slots) tested without clocks; the schedule
// goroutine around it takes time and timers from a supervisor.Clock.
package plugins
