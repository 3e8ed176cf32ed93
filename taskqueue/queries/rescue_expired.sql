-- write-path: worker
-- write-path-set: enable_seqscan = off
-- Take back running tasks whose lease ran out (their worker died or hung):
-- back to queued when retries are left, else failed; one task_lease_expired
-- event each, naming the worker that lost the lease; the failed ones are
-- counted in queue_counts, and their callbacks queued (_task_ended.sql) and
-- their dependents settled (taskqueue.settle_children, as complete_tasks.sql
-- does).
--   $1 timestamptz the time leases are judged by (NULL: now(); tests pin it)
--   $2 int         how many rows at most per call
--   $3 text        id of the worker doing the rescue, kept in the event detail
--   $4 timestamptz leases below this were judged by an earlier call (NULL:
--                  read the lease index from its start). While vacuum is held
--                  back, the index keeps an entry for every lease ever given;
--                  a floor keeps each call to the leases that ran out since.
-- Returns the rescued tasks, or one row with a NULL id when there are none,
-- each with judged_at: the time leases were judged by (the next floor).
WITH expired AS MATERIALIZED (
    SELECT id, locked_by
    FROM taskqueue.tasks
    WHERE status = 'running'
      AND locked_until >= coalesce($4::timestamptz, '-infinity')
      AND locked_until < coalesce($1::timestamptz, now())
    ORDER BY locked_until
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
rescued AS (
    UPDATE taskqueue.tasks t
    SET status = CASE WHEN t.attempts <= t.max_retries THEN 'queued'
                      ELSE 'failed' END::taskqueue.task_status,
        run_at = now(),
        locked_by = NULL,
        locked_until = NULL,
        last_error = 'lease expired: worker ' || e.locked_by || ' stopped renewing it',
        completed_at = CASE WHEN t.attempts <= t.max_retries THEN NULL ELSE now() END
    FROM expired e
    WHERE t.id = e.id
    RETURNING t.id, t.queue, t.status, t.attempts, t.last_error, e.locked_by, t.callback,
              NULL::jsonb AS result, t.children, t.workflow_id, t.tenant
),
rescued_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, worker_id, error,
                                       detail)
    SELECT id, 'task_lease_expired', status, attempts, locked_by, last_error,
           jsonb_build_object('rescued_by', $3::text)
    FROM rescued
),
counted AS (
    -- Tasks failed for good are counted: one appended row per queue.
    INSERT INTO taskqueue.queue_counts (queue, failed, retries, tasks_with_retries)
    SELECT queue, count(*), sum(greatest(attempts - 1, 0)), count(*) FILTER (WHERE attempts > 1)
    FROM rescued
    WHERE status = 'failed'
    GROUP BY queue
),
running_counted AS (
    -- Queues with a concurrency limit count their running tasks down.
    UPDATE taskqueue.queues s
    SET running = greatest(s.running - r.n, 0)
    FROM (SELECT queue, count(*)::int AS n FROM rescued GROUP BY queue) AS r
    WHERE s.name = r.queue AND s.concurrency_limit IS NOT NULL
),
ended AS (
    SELECT id, queue, status, attempts, result, last_error, callback, children, workflow_id,
           tenant
    FROM rescued
    WHERE status = 'failed'
),
tenant_changes AS (
    SELECT tenant, -1 AS delta FROM ended
),
-- include: _tenant_counts.sql
,
settled AS (
    SELECT taskqueue.settle_children(array_agg(id ORDER BY id), array_agg(false), $3) AS n
    FROM ended
    WHERE children > 0
    HAVING count(*) > 0
),
-- include: _task_ended.sql
,
-- include: _open_lanes.sql
,
-- include: _ended_notices.sql
,
requeued_queues AS (
    SELECT string_agg(DISTINCT queue, ',') AS queues FROM rescued WHERE status = 'queued'
)
SELECT rescued.id, rescued.status, coalesce($1::timestamptz, now()) AS judged_at,
       (SELECT pg_notify('taskqueue', queues) IS NOT NULL FROM requeued_queues
        WHERE queues IS NOT NULL) AS notified,
       (SELECT count(*) FROM done_notices) AS done_notified,
       (SELECT n FROM settled) AS settled
FROM (SELECT 1) AS one
LEFT JOIN rescued ON true;
