-- write-path: api
-- Bulk cancel: matched tasks that are waiting, queued or running become cancelled,
-- each with its task_cancelled event (a running one names its worker and
-- attempt, and its lease ends here: the worker's outcome will fail the
-- fence). Limited queues count their running tasks down; each worker that
-- held some is told which to stop (one NOTIFY per worker and 100 tasks); the
-- cancels are counted in queue_counts; callbacks for them are queued
-- (_task_ended.sql); the dependents of cancelled tasks are settled
-- (taskqueue.settle_children); the action is logged.
--   $1-$8, $11     which tasks (and of which tenant), how many at most: see _bulk_match.sql
--   $9 text        who, for the operator log
--   $10 jsonb      what was asked, for the operator log
-- Returns how many tasks matched, how many changed, and the last id matched
-- (pass it as $7 for the next chunk when matched = $8).
WITH
-- include: _bulk_match.sql
changed AS (
    UPDATE taskqueue.tasks t
    SET status = 'cancelled', completed_at = now(), locked_by = NULL, locked_until = NULL
    FROM matched m
    WHERE t.id = m.id AND m.status IN ('waiting', 'queued', 'running')
    RETURNING t.id, t.queue, t.attempts, m.status AS was, m.locked_by AS worker,
              t.status, t.result, t.last_error, t.callback, t.children, t.workflow_id,
              t.tenant
),
changed_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, worker_id, detail)
    SELECT id, 'task_cancelled', 'cancelled', attempts,
           CASE WHEN was = 'running' THEN worker END,
           jsonb_build_object('was', was)
    FROM changed
),
counted AS (
    -- One appended row per queue (queue_counts).
    INSERT INTO taskqueue.queue_counts (queue, cancelled, retries, tasks_with_retries)
    SELECT queue, count(*), sum(greatest(attempts - 1, 0)), count(*) FILTER (WHERE attempts > 1)
    FROM changed
    GROUP BY queue
),
running_counted AS (
    UPDATE taskqueue.queues s
    SET running = greatest(s.running - c.n, 0)
    FROM (SELECT queue, count(*)::int AS n FROM changed WHERE was = 'running' GROUP BY queue) AS c
    WHERE s.name = c.queue AND s.concurrency_limit IS NOT NULL
),
ended AS (
    SELECT id, queue, status, attempts, result, last_error, callback, workflow_id, tenant
    FROM changed
),
tenant_changes AS (
    SELECT tenant, -1 AS delta FROM ended
),
-- include: _tenant_counts.sql
,
-- include: _task_ended.sql
,
-- include: _open_lanes.sql
,
-- include: _ended_notices.sql
,
to_stop AS (
    SELECT worker, id, (row_number() OVER (PARTITION BY worker ORDER BY id) - 1) / 100 AS chunk
    FROM changed
    WHERE was = 'running'
),
notices AS (
    SELECT pg_notify('taskqueue_control',
                     json_build_object('worker', worker, 'cancel', json_agg(id))::text)
    FROM to_stop
    GROUP BY worker, chunk
),
settled AS (
    SELECT taskqueue.settle_children(array_agg(id ORDER BY id), array_agg(false), $9) AS n
    FROM changed
    WHERE children > 0
    HAVING count(*) > 0
),
summary AS (
    SELECT (SELECT count(*) FROM matched) AS matched,
           (SELECT count(*) FROM changed) AS changed,
           (SELECT id FROM matched ORDER BY id DESC LIMIT 1) AS last_id
),
logged AS (
    INSERT INTO taskqueue.operator_actions (actor, action, scope, result)
    SELECT $9, 'cancel', $10::jsonb, jsonb_build_object('matched', matched, 'changed', changed)
    FROM summary
)
SELECT matched, changed, last_id, (SELECT count(*) FROM notices) AS notified,
       (SELECT count(*) FROM done_notices) AS done_notified,
       (SELECT n FROM settled) AS settled
FROM summary;
