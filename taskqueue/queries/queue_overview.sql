-- Every queue that has tasks, settings or workers: its settings, its tasks
-- by state, the age of its oldest due task, what finished and failed in the
-- last minute, and how many live workers take from it.
--   $1 text one queue (NULL: all)
WITH counts AS (
    SELECT queue,
           count(*) FILTER (WHERE status = 'queued') AS queued,
           count(*) FILTER (WHERE status = 'queued' AND run_at <= now()) AS due,
           count(*) FILTER (WHERE status = 'running') AS running,
           count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
           min(run_at) FILTER (WHERE status = 'queued' AND run_at <= now()) AS oldest_due
    FROM taskqueue.tasks
    WHERE $1::text IS NULL OR queue = $1
    GROUP BY queue
),
recent AS (
    SELECT t.queue,
           count(*) AS finished,
           count(*) FILTER (WHERE e.event_type = 'task_failed') AS failed
    FROM taskqueue.task_events e
    JOIN taskqueue.tasks t ON t.id = e.task_id
    WHERE e.at > now() - interval '1 minute'
      AND e.event_type IN ('task_succeeded', 'task_failed', 'task_cancelled')
      AND ($1::text IS NULL OR t.queue = $1)
    GROUP BY t.queue
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
    SELECT queue FROM counts
    UNION SELECT name FROM taskqueue.queues
    UNION SELECT queue FROM live
)
SELECT n.queue AS name,
       coalesce(s.paused, false) AS paused,
       s.concurrency_limit,
       s.rate_limit,
       s.rate_period_seconds,
       coalesce(c.queued, 0) AS queued,
       coalesce(c.due, 0) AS due,
       coalesce(c.queued - c.due, 0) AS scheduled,
       coalesce(c.running, 0) AS running,
       coalesce(c.succeeded, 0) AS succeeded,
       coalesce(c.failed, 0) AS failed,
       coalesce(c.cancelled, 0) AS cancelled,
       coalesce(extract(epoch FROM now() - c.oldest_due)::float8, 0) AS oldest_due_age_seconds,
       coalesce(r.finished, 0) AS finished_last_minute,
       coalesce(r.failed, 0) AS failed_last_minute,
       coalesce(l.workers, 0) AS workers
FROM names n
LEFT JOIN taskqueue.queues s ON s.name = n.queue
LEFT JOIN counts c ON c.queue = n.queue
LEFT JOIN recent r ON r.queue = n.queue
LEFT JOIN live l ON l.queue = n.queue
WHERE $1::text IS NULL OR n.queue = $1
ORDER BY n.queue;
