// Package fleet decides the course of a fleet rollout: which device gets
// which job and when, in rings of growing size, at a bounded rate, with a
// soak after each success, a timeout per device and a failure budget that
// halts the rollout (and, when asked, rolls the devices that took the new
// deployment back to what they ran before).
//
// It owns those decisions and the record they rest on: ring membership,
// decided once from a hash of rollout and device id; each device's outcome;
// the rollout's phase; the counts that keep its status. Core takes events
// stamped with their time (start, tick, a job status, a device state,
// pause, resume, cancel, a restart) and answers with actions (publish a
// job, cancel one, roll back, record an outcome, a ring started or
// finished, the rollout halted or finished).
//
// It does no I/O: it reads no clock, starts no goroutine, opens no MQTT
// connection and speaks no SQL. Resolving a group to devices, turning a
// retained state into an event, signing and publishing jobs and storing
// the State are its caller's.
package fleet
