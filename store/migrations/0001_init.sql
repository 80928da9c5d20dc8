-- KeyStone store, schema version 1.
-- Timestamps are UTC unix milliseconds. JSON columns are TEXT checked by
-- the Go side. Tables are STRICT so a wrong type is an error, not a
-- silent conversion.

-- Installed components and their last known state.
CREATE TABLE components (
    name             TEXT PRIMARY KEY,
    version          TEXT NOT NULL,
    kind             TEXT NOT NULL,
    state            TEXT NOT NULL,
    config           TEXT,                       -- JSON, NULL = none
    since            INTEGER NOT NULL,           -- entered state at
    restarts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT NOT NULL DEFAULT '',
    previous_version TEXT NOT NULL DEFAULT ''
) STRICT;

-- Processes the agent started, so a restarted agent adopts or kills them
-- instead of starting a second copy. start_ticks (field 22 of
-- /proc/PID/stat) tells a live process from a reused pid; it is a uint64
-- stored as its int64 bit pattern.
CREATE TABLE processes (
    component   TEXT PRIMARY KEY,
    pid         INTEGER NOT NULL,
    start_ticks INTEGER NOT NULL,
    pgid        INTEGER NOT NULL,
    cgroup      TEXT NOT NULL DEFAULT '',
    started_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE deployments (
    id          TEXT PRIMARY KEY,
    manifest    TEXT NOT NULL,                   -- TOML text
    recipes     TEXT NOT NULL DEFAULT '{}',      -- JSON object: name -> TOML text
    status      TEXT NOT NULL
                CHECK (status IN ('QUEUED', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'CANCELED')),
    rolled_back INTEGER NOT NULL DEFAULT 0 CHECK (rolled_back IN (0, 1)),
    error       TEXT NOT NULL DEFAULT '',
    error_code  TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    finished_at INTEGER,                         -- NULL while not finished
    previous    TEXT                             -- JSON: the component set before it
) STRICT;

CREATE INDEX deployments_by_status ON deployments (status, created_at);

-- Checkpointed steps of a deployment, numbered 1, 2, 3, … per deployment.
CREATE TABLE steps (
    deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    name          TEXT NOT NULL,
    component     TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL CHECK (status IN ('started', 'done', 'failed')),
    detail        TEXT NOT NULL DEFAULT '',
    at            INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, seq)
) STRICT;

-- Jobs seen, for idempotency: a job id is run once and answered with its
-- recorded final status afterwards.
CREATE TABLE jobs (
    job_id      TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL
                CHECK (status IN ('QUEUED', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'REJECTED', 'CANCELED')),
    final       TEXT,                            -- JSON: final status document
    received_at INTEGER NOT NULL,
    finished_at INTEGER
) STRICT;

-- Outgoing messages, delivered in seq order and deleted when acknowledged.
-- AUTOINCREMENT: a seq is never reused, even after the newest is deleted.
CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    topic      TEXT NOT NULL,
    payload    BLOB NOT NULL,
    qos        INTEGER NOT NULL CHECK (qos BETWEEN 0 AND 2),
    retain     INTEGER NOT NULL DEFAULT 0 CHECK (retain IN (0, 1)),
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE plugin_state (
    component  TEXT PRIMARY KEY,
    state      TEXT NOT NULL,                    -- JSON
    updated_at INTEGER NOT NULL
) STRICT;

-- State transitions and other happenings. AUTOINCREMENT keeps seq usable
-- as a follow cursor across pruning.
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    component  TEXT NOT NULL DEFAULT '',
    kind       TEXT NOT NULL,
    from_state TEXT NOT NULL DEFAULT '',
    to_state   TEXT NOT NULL DEFAULT '',
    reason     TEXT NOT NULL DEFAULT '',
    detail     TEXT                              -- JSON
) STRICT;

CREATE INDEX events_by_component ON events (component, seq);

-- The artifact cache index; the bytes live in data_dir/artifacts/<sha256>.
CREATE TABLE artifacts (
    sha256     TEXT PRIMARY KEY,
    size       INTEGER NOT NULL CHECK (size >= 0),
    created_at INTEGER NOT NULL,
    last_used  INTEGER NOT NULL
) STRICT;

CREATE INDEX artifacts_by_last_used ON artifacts (last_used);

-- Small singletons (e.g. a pending self-update checkpoint).
CREATE TABLE kv (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;
