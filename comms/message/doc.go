// Package message holds what KeyStone devices and the fleet controller
// say to each other over MQTT: the topics, the signed job document, the
// job status and the retained device state, as JSON. Both sides import it,
// so the two ends of every topic agree by construction.
//
// It owns the formats and their checks (a job's signature, expiry, device
// and kind); it must not open a connection, touch the store or decide what
// a device does with a job.
package message
