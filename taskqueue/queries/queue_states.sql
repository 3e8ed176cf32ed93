-- A queue's state, the one read model behind GET /api/queues and /api/stats,
-- the dashboard, GET /health and the /metrics gauges: per queue its settings,
-- its waiting and running tasks, the age of its oldest due task and its live
-- workers; the count of distinct live workers on every row.
-- Cheap by default: queued rows are counted through tasks_claim_idx, running
-- ones through tasks_lease_idx, failed ones (when asked) through
-- tasks_failed_idx, all partial, so the cost follows the backlog, not the
-- history. Only $3 reads every row of the queue; when false its CTE is
-- gated off by `WHERE $3` and never runs. It reads no history (task_events),
-- so every role that may read tasks may read it; what finished lately is
-- recent_outcomes.sql.
--   $1 text    one queue (NULL: all)
--   $2 boolean count failed tasks
--   $3 boolean count every task: succeeded, cancelled, total and retries
-- One row per queue that has tasks queued or running (failed when $2, any
-- when $3), settings or live workers; or, when there is none, a single row
-- whose name is NULL, carrying live_workers. Counts not asked for are 0.
WITH waiting AS (
    SELECT queue,
           count(*) AS queued,
           count(*) FILTER (WHERE run_at <= now()) AS due,
           min(run_at) FILTER (WHERE run_at <= now()) AS oldest_due
    FROM taskqueue.tasks
    WHERE status = 'queued' AND ($1::text IS NULL OR queue = $1)
    GROUP BY queue
),
running AS (
    -- Running rows are exactly the ones holding a lease (tasks_running_has_lease).
    SELECT queue, count(*) AS running
    FROM taskqueue.tasks
    WHERE locked_until IS NOT NULL AND status = 'running'
      AND ($1::text IS NULL OR queue = $1)
    GROUP BY queue
),
failed AS (
    SELECT queue, count(*) AS failed
    FROM taskqueue.tasks
    WHERE $2::boolean AND status = 'failed' AND ($1::text IS NULL OR queue = $1)
    GROUP BY queue
),
totals AS (
    SELECT queue,
           count(*) AS total,
           count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
           coalesce(sum(greatest(attempts - 1, 0)), 0)::bigint AS retries,
           count(*) FILTER (WHERE attempts > 1) AS tasks_with_retries
    FROM taskqueue.tasks
    WHERE $3::boolean AND ($1::text IS NULL OR queue = $1)
    GROUP BY queue
),
live AS (
    SELECT w.queues
    FROM taskqueue.workers w
    WHERE
        -- include: _live_worker.sql
),
serving AS (
    SELECT q.queue, count(*) AS workers
    FROM live CROSS JOIN unnest(live.queues) AS q(queue)
    GROUP BY q.queue
),
names AS (
    SELECT queue FROM waiting
    UNION SELECT queue FROM running
    UNION SELECT queue FROM failed
    UNION SELECT queue FROM totals
    UNION SELECT name FROM taskqueue.queues
    UNION SELECT queue FROM serving
),
states AS (
    SELECT n.queue AS name,
           coalesce(s.paused, false) AS paused,
           s.concurrency_limit,
           s.rate_limit,
           s.rate_period_seconds,
           coalesce(w.queued, 0) AS queued,
           coalesce(w.due, 0) AS due,
           coalesce(w.queued - w.due, 0) AS scheduled,
           coalesce(r.running, 0) AS running,
           coalesce(f.failed, 0) AS failed,
           coalesce(extract(epoch FROM now() - w.oldest_due)::float8, 0)
               AS oldest_due_age_seconds,
           coalesce(v.workers, 0) AS workers,
           coalesce(t.total, 0) AS total,
           coalesce(t.succeeded, 0) AS succeeded,
           coalesce(t.cancelled, 0) AS cancelled,
           coalesce(t.retries, 0) AS retries,
           coalesce(t.tasks_with_retries, 0) AS tasks_with_retries
    FROM names n
    LEFT JOIN taskqueue.queues s ON s.name = n.queue
    LEFT JOIN waiting w ON w.queue = n.queue
    LEFT JOIN running r ON r.queue = n.queue
    LEFT JOIN failed f ON f.queue = n.queue
    LEFT JOIN totals t ON t.queue = n.queue
    LEFT JOIN serving v ON v.queue = n.queue
    WHERE $1::text IS NULL OR n.queue = $1
)
SELECT (SELECT count(*) FROM live) AS live_workers, q.*
FROM (SELECT 1) AS one
LEFT JOIN states q ON true
ORDER BY q.name;
