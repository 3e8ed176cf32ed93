-- The callbacks that follow a task's end, in the statement that ends it
-- (complete_tasks_with_callbacks, cancel, rescue, expire): a task that
-- carries a callback for how it ended gets a `taskqueue.callback` task
-- queued (on its own queue, due now, with its task_queued event naming the
-- task), whose payload is the signed delivery's url and body.
-- Expects a CTE ended (id, queue, status, attempts, result, last_error,
-- callback, workflow_id) of the tasks this statement ended, and ends without a comma; the
-- statement includes _open_lanes.sql next (this defines lane_rows) and
-- _ended_notices.sql.
callback_rows AS MATERIALIZED (
    SELECT taskqueue.uuid_v7() AS id, e.queue, 'taskqueue.callback'::text AS type,
           0 AS priority, now() AS run_at, e.id AS task_id,
           'callback: ' || e.status::text || ' ' || e.id::text AS name,
           jsonb_build_object(
               'url', e.callback->>'url',
               'body', jsonb_build_object(
                   'id', e.id,
                   'status', e.status::text,
                   'result', e.result,
                   'error', e.last_error,
                   'attempts', e.attempts,
                   'workflow_id', e.workflow_id,
                   'finished_at', now())) AS payload
    FROM ended e
    WHERE e.callback IS NOT NULL AND e.callback->'events' ? e.status::text
),
callbacks_queued AS (
    -- Due now: one wakeup per queue (NOTIFYs alike within a transaction are
    -- sent once).
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
lane_rows AS (
    SELECT queue, type, priority, run_at, NULL::text AS tenant FROM callback_rows
)
