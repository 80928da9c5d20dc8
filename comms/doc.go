// Package comms is the device side of MQTT v5: a Device takes signed jobs
// from <prefix>/<device_id>/jobs/notify, runs them through the deployment
// engine, and reports job statuses, the device's retained state and its
// component events. CheckBroker dials a broker once and says which step
// fails. The formats live in comms/message; the operator side (fleet
// rollouts) lives in comms/controller.
//
// It owns the device's MQTT connection (mutual TLS, a persistent session,
// the will), the decision over every job document that arrives (known,
// refused, stale or accepted, and which queued job a newer one
// supersedes), the following of each accepted job to its end, and the
// order in which its messages leave. Every status and state message is
// written to the store's outbox first, in the same transaction as the job
// change it reports, and leaves it only once the broker has acknowledged
// it: one message in flight at a time, in seq order, sent again from the
// oldest after any reconnect. A job is recorded before the broker is
// acknowledged, and a job id is run at most once, across restarts.
//
// It must not plan, fetch or start anything itself (the Deployer does),
// speak SQL (the store does), trust a job the keyring does not, or keep a
// message only in memory or in the MQTT library's queue: the store is the
// only durable queue. A broker that cannot be reached is never fatal: the
// device keeps retrying and the agent supervises meanwhile.
package comms
