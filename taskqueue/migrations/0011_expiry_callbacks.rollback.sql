-- Undo 0011_expiry_callbacks.
DROP FUNCTION IF EXISTS taskqueue.prune_expired(timestamptz, integer, interval, text);
DROP FUNCTION IF EXISTS taskqueue.uuid_v7();
ALTER TABLE taskqueue.queue_counts DROP COLUMN IF EXISTS expired;
DROP INDEX IF EXISTS taskqueue.tasks_expired_idx;
DROP INDEX IF EXISTS taskqueue.tasks_expiry_idx;
ALTER TABLE taskqueue.tasks DROP COLUMN IF EXISTS callback, DROP COLUMN IF EXISTS expires_at;
