-- What follows a task's end, in the statement that ends it (complete,
-- cancel, rescue, expire, and a claim that finds a task expired): a task
-- that carries a callback for how it ended gets a `taskqueue.callback` task
-- queued (on its own queue, due now, with its task_queued event naming the
-- task), whose payload is the signed delivery's url and body; and API
-- processes waiting for results hear the ended ids on the taskqueue_done
-- channel (one NOTIFY per 200 ids; a statement that ends nothing sends none).
-- Expects a CTE ended (id, queue, status, attempts, result, last_error,
-- callback) of the tasks this statement ended, and ends without a comma; the
-- statement includes _open_lanes.sql next (this defines lane_rows), and
-- must read done_notices (an unread CTE without writes is never run).
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
                   -- workflow_id: add 'workflow_id', e.workflow_id here once
                   -- tasks have that column (workflows, issue 19a).
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
    SELECT queue, type, priority, run_at FROM callback_rows
),
done_notices AS (
    SELECT pg_notify('taskqueue_done', string_agg(id::text, ','))
    FROM (SELECT id, (row_number() OVER () - 1) / 200 AS chunk FROM ended) AS d
    GROUP BY chunk
)
