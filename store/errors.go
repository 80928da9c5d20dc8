package store

import "errors"

// Errors callers branch on. Methods wrap them with what was being done, so
// test them with errors.Is.
var (
	// ErrNotFound: the row asked for does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrExists: a row with that key was already recorded (a deployment id
	// or job id seen before).
	ErrExists = errors.New("store: already exists")
	// ErrInvalid: the value given cannot be stored (empty key, unknown
	// status, malformed JSON, out-of-range number).
	ErrInvalid = errors.New("store: invalid value")
	// ErrSchemaTooNew: the database was migrated by a newer build than this
	// one; opening it would risk misreading it.
	ErrSchemaTooNew = errors.New("store: database schema is newer than this build")
	// ErrCorrupt: PRAGMA integrity_check found problems.
	ErrCorrupt = errors.New("store: integrity check failed")
)
