-- Undo 0013_tenants: tasks belong to no tenant; cascade_ended() goes back
-- to 0011_expiry_callbacks' version.
CREATE OR REPLACE FUNCTION taskqueue.cascade_ended(p_ids uuid[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    queued integer;
BEGIN
    PERFORM pg_notify('taskqueue_done', string_agg(id::text, ','))
    FROM (SELECT id, (row_number() OVER () - 1) / 200 AS chunk
          FROM unnest(p_ids) AS u(id)) d
    GROUP BY chunk;
    WITH callback_rows AS MATERIALIZED (
        SELECT taskqueue.uuid_v7() AS id, t.queue, 'taskqueue.callback'::text AS type,
               0 AS priority, now() AS run_at, t.id AS task_id,
               'callback: ' || t.status::text || ' ' || t.id::text AS name,
               jsonb_build_object(
                   'url', t.callback->>'url',
                   'body', jsonb_build_object(
                       'id', t.id,
                       'status', t.status::text,
                       'result', t.result,
                       'error', t.last_error,
                       'attempts', t.attempts,
                       'workflow_id', t.workflow_id,
                       'finished_at', now())) AS payload
        FROM taskqueue.tasks t
        WHERE t.id = ANY (p_ids) AND t.callback IS NOT NULL
          AND t.callback->'events' ? t.status::text
    ),
    callbacks_queued AS (
        INSERT INTO taskqueue.tasks (id, queue, type, name, payload, priority, max_retries,
                                     timeout_seconds, run_at)
        SELECT id, queue, type, name, payload, priority, 12, 30, run_at FROM callback_rows
        RETURNING id, pg_notify('taskqueue', queue) AS notified
    ),
    callbacks_queued_events AS (
        INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, detail)
        SELECT id, 'task_queued', 'queued', 0, jsonb_build_object('callback_for', task_id)
        FROM callback_rows
    ),
    lanes_opened AS (
        INSERT INTO taskqueue.claim_lanes (queue, type, priority)
        SELECT DISTINCT queue, type, priority FROM callback_rows
        ON CONFLICT DO NOTHING
    )
    SELECT count(*) INTO queued FROM callbacks_queued;
END
$$;
DROP FUNCTION IF EXISTS taskqueue.fold_tenant_counts(integer);
DROP FUNCTION IF EXISTS taskqueue.admit_tasks(text, bigint);
DROP TABLE IF EXISTS taskqueue.tenant_counts;
DROP TABLE IF EXISTS taskqueue.tenants;
DROP INDEX IF EXISTS taskqueue.tasks_tenant_idx;
ALTER TABLE taskqueue.tasks DROP COLUMN IF EXISTS tenant;
