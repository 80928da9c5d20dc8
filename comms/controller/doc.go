// Package controller is the operator's end of KeyStone's MQTT link: one
// connection to the broker with mutual TLS and a persistent session,
// through which it publishes signed job documents (retained, QoS 1, on
// each device's jobs/notify topic), takes every device's job statuses
// (optionally through a shared subscription, so that several controller
// processes split the load) and keeps every device's latest retained
// state.
//
// It owns the connection and what crosses it: reconnecting, subscribing
// again after every reconnect, signing a job and checking it as a device
// would before it leaves, dropping a status already seen (by device and
// sequence number), and refusing a message that does not decode or does
// not match its topic, counting and logging it without stopping.
//
// It decides nothing about rollouts: which device gets which job, when,
// and what a status means for a rollout belong to its caller, which also
// keeps the durable record. It keeps no files and reads no clock but the
// one it is given.
package controller
