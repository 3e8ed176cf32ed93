-- write-path: api
-- Put a failed or cancelled task back in its queue, due now, with its retry
-- budget renewed (attempts back to 0; the history keeps every earlier
-- attempt), take it back out of the finish counts (queue_counts), and log the
-- action. A task whose parents are not all finished waits for them again;
-- its children still waiting count it again (see retry_tasks.sql).
--   $1 uuid task id
--   $2 text who, for the operator log
WITH target AS MATERIALIZED (
    SELECT id, status, attempts
    FROM taskqueue.tasks
    WHERE id = $1 AND status IN ('failed', 'cancelled')
    FOR UPDATE
),
pending AS (
    SELECT count(*)::int AS n
    FROM target
    JOIN taskqueue.task_dependencies d ON d.child_id = target.id
    JOIN taskqueue.tasks p ON p.id = d.parent_id
    WHERE p.status IN ('waiting', 'queued', 'running')
       OR (d.on_parent_failure = 'hold' AND p.status = 'failed')
),
requeued AS (
    UPDATE taskqueue.tasks t
    SET status = CASE WHEN pe.n > 0 THEN 'waiting' ELSE 'queued' END::taskqueue.task_status,
        waiting_on = pe.n,
        attempts = 0, run_at = now(), completed_at = NULL,
        locked_by = NULL, locked_until = NULL
    FROM target, pending pe
    WHERE t.id = target.id
    RETURNING t.*, target.status AS was, target.attempts AS was_attempts
),
rewaiting_locked AS MATERIALIZED (
    -- Status is tested as text here and below: a test of the enum fits
    -- tasks_waiting_idx, which stale statistics can have read in full for
    -- each child (see 0022_settle_in_one_pass).
    SELECT t.id, count(*)::int AS n
    FROM requeued r
    JOIN taskqueue.task_dependencies d ON d.parent_id = r.id
    JOIN taskqueue.tasks t ON t.id = d.child_id
    WHERE r.children > 0 AND t.status::text = 'waiting'
      -- A held sequence never counted its failed task down (0014_claim_keys).
      AND NOT (d.on_parent_failure = 'hold' AND r.was = 'failed')
    GROUP BY t.id
    ORDER BY t.id
),
rewaited AS (
    UPDATE taskqueue.tasks t
    SET waiting_on = t.waiting_on + r.n
    FROM rewaiting_locked r
    WHERE t.id = r.id AND t.status::text = 'waiting'
),
uncounted AS (
    -- The task is no longer finished: take it back out of queue_counts.
    INSERT INTO taskqueue.queue_counts (queue, failed, cancelled, retries, tasks_with_retries)
    SELECT queue, -(was = 'failed')::int, -(was = 'cancelled')::int,
           -greatest(was_attempts - 1, 0), -(was_attempts > 1)::int
    FROM requeued
),
tenant_changes AS (
    SELECT tenant, 1 AS delta FROM requeued
),
-- include: _tenant_counts.sql
,
lane_rows AS (
    SELECT queue, type, priority, run_at, tenant FROM requeued WHERE status = 'queued'
),
-- include: _open_lanes.sql
,
requeued_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, error)
    SELECT id, 'task_requeued', status, 0, NULL FROM requeued
),
logged AS (
    INSERT INTO taskqueue.operator_actions (actor, action, scope)
    SELECT $2, 'retry', jsonb_build_object('task_id', id) FROM requeued
)
SELECT requeued.*,
       CASE WHEN requeued.status = 'queued' THEN pg_notify('taskqueue', requeued.queue) END
           IS NOT NULL AS notified
FROM requeued;
