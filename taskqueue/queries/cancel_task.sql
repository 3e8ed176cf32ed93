-- write-path: api
-- Cancel a task that is waiting, queued or running; finished tasks are left alone
-- (zero rows: the caller reports why). A running task is cancelled here, in
-- the database, like any other finish: its worker's outcome will fail the
-- fence and change nothing. The worker is told to stop the handler (a NOTIFY
-- naming it; failing that, its next lease renewal finds the task gone).
-- The cancel is counted in queue_counts; a callback for it is queued
-- (_task_ended.sql). Its dependents are settled (taskqueue.settle_children:
-- those that asked for it are cancelled with it, transitively; the others
-- count it as finished).
--   $1 uuid task id
--   $2 text who, for the operator log
WITH target AS MATERIALIZED (
    SELECT id, status, locked_by, attempts, queue
    FROM taskqueue.tasks
    WHERE id = $1 AND status IN ('waiting', 'queued', 'running')
    FOR UPDATE
),
cancelled AS (
    UPDATE taskqueue.tasks t
    SET status = 'cancelled', completed_at = now(), locked_by = NULL, locked_until = NULL
    FROM target
    WHERE t.id = target.id
    RETURNING t.*, target.status AS was, target.locked_by AS worker
),
cancelled_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, worker_id, detail)
    SELECT id, 'task_cancelled', 'cancelled', attempts,
           CASE WHEN was = 'running' THEN worker END,
           jsonb_build_object('was', was)
    FROM cancelled
),
counted AS (
    INSERT INTO taskqueue.queue_counts (queue, cancelled, retries, tasks_with_retries)
    SELECT queue, 1, greatest(attempts - 1, 0), (attempts > 1)::int FROM cancelled
),
running_counted AS (
    UPDATE taskqueue.queues s
    SET running = greatest(s.running - 1, 0)
    FROM cancelled c
    WHERE s.name = c.queue AND c.was = 'running' AND s.concurrency_limit IS NOT NULL
),
ended AS (
    SELECT id, queue, status, attempts, result, last_error, callback, workflow_id, tenant
    FROM cancelled
),
tenant_changes AS (
    SELECT tenant, -1 AS delta FROM ended
),
-- include: _tenant_counts.sql
,
settled AS (
    SELECT taskqueue.settle_children(array_agg(id), array_agg(false), $2) AS n
    FROM cancelled
    WHERE children > 0
    HAVING count(*) > 0
),
-- include: _task_ended.sql
,
-- include: _open_lanes.sql
,
-- include: _ended_notices.sql
,
logged AS (
    INSERT INTO taskqueue.operator_actions (actor, action, scope, result)
    SELECT $2, 'cancel', jsonb_build_object('task_id', id), jsonb_build_object('was', was)
    FROM cancelled
)
SELECT cancelled.*,
       CASE WHEN was = 'running'
            THEN pg_notify('taskqueue_control',
                           json_build_object('worker', worker, 'cancel', json_build_array(id))::text)
       END IS NOT NULL AS notified,
       (SELECT count(*) FROM done_notices) AS done_notified,
       (SELECT n FROM settled) AS settled
FROM cancelled;
