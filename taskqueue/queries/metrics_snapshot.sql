-- The queue gauges the API serves on /metrics (read at most once per cache
-- interval, however often it is scraped): tasks by queue and state, the age of
-- each queue's oldest due task, and the live workers as GET /health counts them.
-- Queued rows are counted through the claim index and running ones through the
-- lease index (both partial), so the cost follows the backlog, not the history.
-- No parameters. One row per queue that has tasks queued or running, live
-- workers or settings, or a single row with queue NULL when there is none;
-- `workers` is on every row.
WITH waiting AS (
    SELECT queue,
           count(*) FILTER (WHERE run_at <= now()) AS due,
           count(*) FILTER (WHERE run_at > now()) AS scheduled,
           min(run_at) FILTER (WHERE run_at <= now()) AS oldest_due
    FROM taskqueue.tasks
    WHERE status = 'queued'
    GROUP BY queue
),
running AS (
    SELECT queue, count(*) AS running
    FROM taskqueue.tasks
    WHERE locked_until IS NOT NULL AND status = 'running'
    GROUP BY queue
),
live AS (
    SELECT queues
    FROM taskqueue.workers
    WHERE state <> 'stopped'
      AND last_heartbeat_at >= now() - make_interval(secs => 3 * heartbeat_seconds)
),
-- Queues a worker serves or an operator configured report zeros when idle.
known AS (
    SELECT queue FROM waiting
    UNION SELECT queue FROM running
    UNION SELECT unnest(queues) FROM live
    UNION SELECT name FROM taskqueue.queues
),
by_queue AS (
    SELECT k.queue,
           coalesce(w.due, 0) AS due,
           coalesce(w.scheduled, 0) AS scheduled,
           coalesce(r.running, 0) AS running,
           coalesce(extract(epoch FROM now() - w.oldest_due)::float8, 0) AS oldest_due_age
    FROM known k
    LEFT JOIN waiting w ON w.queue = k.queue
    LEFT JOIN running r ON r.queue = k.queue
)
SELECT (SELECT count(*) FROM live) AS workers,
       q.queue, q.due, q.scheduled, q.running, q.oldest_due_age
FROM (SELECT 1) AS one
LEFT JOIN by_queue q ON true
ORDER BY q.queue;
