-- Fleet state file, schema version 1: the operator side of MQTT rollouts.
-- A separate database from the agent's keystone.db. Timestamps are UTC
-- unix milliseconds; JSON columns are TEXT checked by the Go side.

-- One row per rollout: the rollout core's whole record as JSON, written
-- after every decision and before anything it decided is published.
-- open is 1 while the rollout may still publish jobs of its own, so a
-- restarted controller knows which rollouts to drive. owner and
-- lease_until name the process driving it, so two processes never drive
-- the same rollout at once.
CREATE TABLE rollouts (
    id          TEXT PRIMARY KEY,
    phase       TEXT NOT NULL,
    open        INTEGER NOT NULL,
    state       TEXT NOT NULL,
    owner       TEXT NOT NULL DEFAULT '',
    lease_until INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX rollouts_open ON rollouts (open, created_at);

-- Job statuses received from devices. A device numbers every message it
-- sends; the broker may deliver one again (after a reconnect, or to a
-- restarted controller), and the primary key keeps it from counting twice.
CREATE TABLE statuses (
    device_id   TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    job_id      TEXT NOT NULL,
    status      TEXT NOT NULL,
    body        TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, seq)
) STRICT;
CREATE INDEX statuses_job ON statuses (job_id);

-- Each device's latest retained state, as last seen: groups are resolved
-- from it, and `fleet devices` lists it without a broker.
CREATE TABLE device_states (
    device_id TEXT PRIMARY KEY,
    online    INTEGER NOT NULL,
    body      TEXT NOT NULL,
    last_seen INTEGER NOT NULL
) STRICT;

-- Pause, resume and cancel asked by another process (`fleet pause`) for
-- the process that drives the rollout, which takes them in order.
CREATE TABLE controls (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    rollout_id   TEXT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    action       TEXT NOT NULL,
    reason       TEXT NOT NULL DEFAULT '',
    requested_at INTEGER NOT NULL
) STRICT;
