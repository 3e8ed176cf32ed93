-- The dashboard's queue table: each queue with waiting, running or failed
-- tasks, settings or live workers. Read from the partial indexes only
-- (tasks_claim_idx for queued rows, tasks_lease_idx for running ones,
-- tasks_failed_idx for failed ones), never the whole table: its cost follows
-- the backlog, not the history (queue_overview.sql counts every row).
--   $1 text one queue (NULL: all)
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
    SELECT queue, count(*) AS running
    FROM taskqueue.tasks
    WHERE locked_until IS NOT NULL AND status = 'running'
      AND ($1::text IS NULL OR queue = $1)
    GROUP BY queue
),
failed AS (
    SELECT queue, count(*) AS failed
    FROM taskqueue.tasks
    WHERE status = 'failed' AND ($1::text IS NULL OR queue = $1)
    GROUP BY queue
),
live AS (
    SELECT q.queue, count(*) AS workers
    FROM taskqueue.workers w
    CROSS JOIN unnest(w.queues) AS q(queue)
    WHERE w.state <> 'stopped'
      AND w.last_heartbeat_at >= now() - make_interval(secs => 3 * w.heartbeat_seconds)
    GROUP BY q.queue
),
names AS (
    SELECT queue FROM waiting
    UNION SELECT queue FROM running
    UNION SELECT queue FROM failed
    UNION SELECT name FROM taskqueue.queues
    UNION SELECT queue FROM live
)
SELECT n.queue AS name,
       coalesce(s.paused, false) AS paused,
       s.concurrency_limit,
       s.rate_limit,
       s.rate_period_seconds,
       coalesce(w.queued, 0) AS queued,
       coalesce(w.due, 0) AS due,
       coalesce(r.running, 0) AS running,
       coalesce(f.failed, 0) AS failed,
       coalesce(extract(epoch FROM now() - w.oldest_due)::float8, 0) AS oldest_due_age_seconds,
       coalesce(l.workers, 0) AS workers
FROM names n
LEFT JOIN taskqueue.queues s ON s.name = n.queue
LEFT JOIN waiting w ON w.queue = n.queue
LEFT JOIN running r ON r.queue = n.queue
LEFT JOIN failed f ON f.queue = n.queue
LEFT JOIN live l ON l.queue = n.queue
WHERE $1::text IS NULL OR n.queue = $1
ORDER BY n.queue;
