// Package comms speaks MQTT v5: on the device, jobs in and status,
// state and events out through the store's outbox; on the operator side,
// fleet rollouts in rings with a failure budget.
package comms
