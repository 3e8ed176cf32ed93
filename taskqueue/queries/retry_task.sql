-- Put a failed or cancelled task back in its queue, due now, with its retry
-- budget renewed (attempts back to 0; the history keeps every earlier
-- attempt), take it back out of the finish counts (queue_counts), and log the
-- action.
--   $1 uuid task id
--   $2 text who, for the operator log
WITH target AS MATERIALIZED (
    SELECT id, status, attempts
    FROM taskqueue.tasks
    WHERE id = $1 AND status IN ('failed', 'cancelled')
    FOR UPDATE
),
requeued AS (
    UPDATE taskqueue.tasks t
    SET status = 'queued', attempts = 0, run_at = now(), completed_at = NULL,
        locked_by = NULL, locked_until = NULL
    FROM target
    WHERE t.id = target.id
    RETURNING t.*, target.status AS was, target.attempts AS was_attempts
),
uncounted AS (
    -- The task is no longer finished: take it back out of queue_counts.
    INSERT INTO taskqueue.queue_counts (queue, failed, cancelled, retries, tasks_with_retries)
    SELECT queue, -(was = 'failed')::int, -(was = 'cancelled')::int,
           -greatest(was_attempts - 1, 0), -(was_attempts > 1)::int
    FROM requeued
),
lane_rows AS (
    SELECT queue, type, priority, run_at FROM requeued
),
-- include: _open_lanes.sql
,
requeued_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, error)
    SELECT id, 'task_requeued', 'queued', 0, NULL FROM requeued
),
logged AS (
    INSERT INTO taskqueue.operator_actions (actor, action, scope)
    SELECT $2, 'retry', jsonb_build_object('task_id', id) FROM requeued
)
SELECT requeued.*, pg_notify('taskqueue', requeued.queue) AS notified FROM requeued;
