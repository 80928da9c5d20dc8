// Package deploy is the deployment engine: it turns a deployment
// manifest and its recipes into the set of components the supervisor runs,
// one deployment at a time, with every step checkpointed in the store so
// that a crash at any point ends, after a restart, in exactly the new set or
// exactly the previous one.
//
// The work order of one deployment is: validate and resolve the whole graph
// (at Submit, before anything is queued) → fetch and verify every artifact
// (nothing running is touched before this succeeds) → checkpoint the plan
// and the previous set → stop what is removed or changed, dependents first,
// and install the new versions → start in dependency order and wait for
// RUNNING (and healthy) within health_timeout → commit the new current set
// and let ota drop versions no longer kept. A failure rolls back to the
// previous set (failure_policy = "rollback") or leaves what succeeded
// (failure_policy = "keep"). docs/deployments.md describes the steps, the
// checkpoints and the error codes.
//
// Each deployment's course is decided by a pure core (core.go: events in,
// effects out, no I/O, no clock) that the executor (execute.go) drives.
// The package speaks its own types (Deployment, PlanItem, Code); the agent
// translates them to the local API's.
//
// The package owns the deployment queue, the plan, the checkpoints and
// rollback. It does not start or stop processes (the supervisor does, through
// the small Supervisor interface declared here), does not download or verify
// bytes (ota does, through Fetcher), speaks no SQL (store does) and never
// removes a component's work folder.
package deploy
