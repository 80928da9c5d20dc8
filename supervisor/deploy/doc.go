// Package deploy is the deployment engine: it turns a deployment manifest
// and its recipes into the set of components the supervisor runs, one
// deployment at a time, with every step checkpointed in the store so that a
// crash at any point ends, after a restart, in exactly the new set or
// exactly the previous one.
//
// A deployment is validated whole at Submit, before anything is queued;
// then every artifact is fetched and verified (nothing running is touched
// before that succeeds), the plan and the previous set are checkpointed,
// what is removed or changed is stopped, dependents first, and replaced, the
// new set is started and must be RUNNING (and healthy) within
// health_timeout, and the new set is committed. A failure rolls back to the
// previous set, or under failure_policy = "keep" leaves what succeeded. The
// Step constants name the checkpoints; docs/deployments.md describes them
// and the error codes.
//
// A pure core (core.go: events in, effects out, no I/O, no clock) decides
// each deployment's course; the executor (execute.go) performs it. The
// package speaks its own types (Deployment, PlanItem, Code); the agent
// translates them to the local API's.
//
// The engine does not start or stop processes (the supervisor does, through
// the Supervisor interface), download or verify bytes (ota does, through
// Fetcher) or speak SQL (store does), and never removes a component's work
// folder.
package deploy
