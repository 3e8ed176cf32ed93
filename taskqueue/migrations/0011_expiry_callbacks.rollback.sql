-- Undo 0011_expiry_callbacks. cascade_ended() goes back to 0010_workflows'
-- version, which reads no callback.
CREATE OR REPLACE FUNCTION taskqueue.cascade_ended(p_ids uuid[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_notify('taskqueue_done', string_agg(id::text, ','))
    FROM (SELECT id, (row_number() OVER () - 1) / 200 AS chunk
          FROM unnest(p_ids) AS u(id)) d
    GROUP BY chunk;
END
$$;
DROP FUNCTION IF EXISTS taskqueue.prune_expired(timestamptz, integer, interval, text);
DROP FUNCTION IF EXISTS taskqueue.uuid_v7();
ALTER TABLE taskqueue.queue_counts DROP COLUMN IF EXISTS expired;
DROP INDEX IF EXISTS taskqueue.tasks_expired_idx;
DROP INDEX IF EXISTS taskqueue.tasks_expiry_idx;
ALTER TABLE taskqueue.tasks DROP COLUMN IF EXISTS callback, DROP COLUMN IF EXISTS expires_at;
