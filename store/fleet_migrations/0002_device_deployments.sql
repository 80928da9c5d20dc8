-- Fleet state file, schema version 2: each device's last successful
-- deployment, so that a later rollout halted with on-halt rollback can
-- send a device the manifest it ran before.

-- One row per device: the manifest of the last deployment job that
-- SUCCEEDED on it (a rollout's job or a rollback job), which rollout and
-- job it came with, and when the success was received.
CREATE TABLE device_deployments (
    device_id    TEXT PRIMARY KEY,
    rollout_id   TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    manifest     TEXT NOT NULL,
    succeeded_at INTEGER NOT NULL
) STRICT;
