-- A job keeps the document it came in (so that a job recorded before a
-- crash can still be run after it) and its creation time (so that an older
-- job replayed after a newer one ran is refused as stale).
ALTER TABLE jobs ADD COLUMN document BLOB;
ALTER TABLE jobs ADD COLUMN created_at INTEGER;
CREATE INDEX outbox_topic ON outbox (topic);
