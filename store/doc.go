// Package store is KeyStone's durable state: one SQLite database in WAL mode
// holding installed components and the processes started for them,
// deployments and their checkpointed steps, jobs seen, the outbox of outgoing
// messages, plugin state, events, the artifact index and a small key/value
// table for singletons.
//
// It is the only package that speaks SQL. It makes no decisions: callers say
// what to record and read it back. It never starts goroutines of its own,
// never interprets the JSON or TOML it keeps, and never logs secrets because
// it is never given any.
//
// Durability: every write is a transaction on a single writer connection
// opened with synchronous=FULL, so when a write method returns nil the change
// survives a crash of the process and a power cut. Reads go through a
// separate pool of read-only connections and never block the writer.
// Changes that must happen together (a status change and the outbox message
// that reports it) go through [Store.Tx].
//
// The schema lives in migrations/NNNN_name.sql, embedded in the binary and
// applied in order by [Open], one transaction each; the version reached is
// PRAGMA user_version. A database written by a newer build is refused with
// [ErrSchemaTooNew] rather than guessed at.
//
// Times are stored as UTC unix milliseconds and come back in UTC with
// millisecond precision.
package store
