// Package store is KeyStone's durable state: one SQLite database in WAL mode
// holding installed components, deployments and their checkpointed steps,
// jobs seen, the outbox of outgoing messages, plugin state, events and the
// artifact index.
//
// It is the only package that speaks SQL. It makes no decisions: callers say
// what to record and read it back.
package store
