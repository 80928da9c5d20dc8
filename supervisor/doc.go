// Package supervisor drives components through their state machines (SPEC §6):
// one actor goroutine per component, ordered by the dependency graph, with
// restart policies, health checks and the deployment engine.
//
// It decides; runners act. It never execs a process itself and never speaks
// SQL: processes come from package runner, persistence from package store.
package supervisor
