-- A queue's state, the one read model behind GET /api/queues and /api/stats,
-- the dashboard, GET /health and the /metrics gauges: per queue its settings
-- (pause, limits, retention overrides), its waiting and running tasks, the
-- age of its oldest due task, what finished, and its live workers; the count
-- of distinct live workers on every row.
-- Waiting tasks (dependencies) are counted through tasks_waiting_idx.
-- Its cost follows the backlog, not the history: queued rows are counted
-- through tasks_claim_idx, running ones through tasks_lease_idx (both
-- partial), and what finished is read from queue_counts, a few rows per queue
-- (the finishing statements append them, the pruner folds them). It reads no
-- history (task_events), so every role that may read tasks may read it. What
-- finished and what failed in the last minute come from the queue_counts
-- rows of that minute, which the pruner folds no further than one per queue
-- and second (0023_recent_from_counts, fold_queue_counts.sql); rows that take
-- counts back (a retry) are not finishes and are left out.
--   $1 text    one queue (NULL: all)
--   $2 boolean read the failed and expired counts
--   $3 boolean read every finish count: succeeded, failed, cancelled, retries
--   $4 int     skip this many queues, in name order (NULL: none)
--   $5 int     at most this many queues (NULL: all)
-- One row per queue that has tasks waiting, queued or running, finish counts (when $2
-- or $3), settings, retention overrides or live workers; or, when there is
-- none, a single row whose name is NULL, carrying live_workers. Counts not
-- asked for are 0. succeeded, failed and cancelled count the tasks whose
-- latest finish was that, kept or pruned since; total is those (and
-- expired) plus the waiting, queued and running ones; finished_last_minute
-- and failed_last_minute (with $3) count the finishes of the last minute.
WITH waiting AS (
    SELECT queue,
           count(*) AS queued,
           count(*) FILTER (WHERE run_at <= now()) AS due,
           min(run_at) FILTER (WHERE run_at <= now()) AS oldest_due
    FROM taskqueue.tasks
    WHERE status = 'queued' AND ($1::text IS NULL OR queue = $1)
    GROUP BY queue
),
blocked AS (
    -- Waiting for their parents (dependencies), through tasks_waiting_idx.
    SELECT queue, count(*) AS waiting
    FROM taskqueue.tasks
    WHERE status = 'waiting' AND ($1::text IS NULL OR queue = $1)
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
counts AS (
    SELECT queue,
           sum(succeeded)::bigint AS succeeded,
           sum(failed)::bigint AS failed,
           sum(cancelled)::bigint AS cancelled,
           sum(retries)::bigint AS retries,
           sum(tasks_with_retries)::bigint AS tasks_with_retries,
           sum(expired)::bigint AS expired,
           coalesce(sum(greatest(succeeded, 0) + greatest(failed, 0) + greatest(cancelled, 0))
                        FILTER (WHERE at > now() - interval '1 minute'), 0)::bigint
               AS finished_last_minute,
           coalesce(sum(greatest(failed, 0)) FILTER (WHERE at > now() - interval '1 minute'),
                    0)::bigint AS failed_last_minute
    FROM taskqueue.queue_counts
    WHERE ($2::boolean OR $3::boolean) AND ($1::text IS NULL OR queue = $1)
    GROUP BY queue
    HAVING sum(succeeded) <> 0 OR sum(failed) <> 0 OR sum(cancelled) <> 0 OR sum(expired) <> 0
        OR count(*) FILTER (WHERE at > now() - interval '1 minute') > 0
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
    UNION SELECT queue FROM blocked
    UNION SELECT queue FROM running
    UNION SELECT queue FROM counts
    UNION SELECT name FROM taskqueue.queues
    UNION SELECT queue FROM taskqueue.queue_retention
    UNION SELECT queue FROM serving
),
states AS (
    SELECT n.queue AS name,
           coalesce(s.paused, false) AS paused,
           s.concurrency_limit,
           s.per_key_concurrency,
           s.rate_limit,
           s.rate_period_seconds,
           k.retain_succeeded,
           k.retain_failed,
           k.retain_cancelled,
           coalesce(w.queued, 0) AS queued,
           coalesce(w.due, 0) AS due,
           coalesce(w.queued - w.due, 0) AS scheduled,
           coalesce(r.running, 0) AS running,
           coalesce(b.waiting, 0) AS waiting,
           coalesce(c.failed, 0) AS failed,
           coalesce(c.expired, 0) AS expired,
           coalesce(extract(epoch FROM now() - w.oldest_due)::float8, 0)
               AS oldest_due_age_seconds,
           coalesce(v.workers, 0) AS workers,
           CASE WHEN $3::boolean
                THEN coalesce(w.queued, 0) + coalesce(b.waiting, 0) + coalesce(r.running, 0)
                     + coalesce(c.succeeded, 0) + coalesce(c.failed, 0) + coalesce(c.cancelled, 0)
                     + coalesce(c.expired, 0)
                ELSE 0 END AS total,
           CASE WHEN $3::boolean THEN coalesce(c.succeeded, 0) ELSE 0 END AS succeeded,
           CASE WHEN $3::boolean THEN coalesce(c.cancelled, 0) ELSE 0 END AS cancelled,
           CASE WHEN $3::boolean THEN coalesce(c.retries, 0) ELSE 0 END AS retries,
           CASE WHEN $3::boolean THEN coalesce(c.tasks_with_retries, 0) ELSE 0 END
               AS tasks_with_retries,
           CASE WHEN $3::boolean THEN coalesce(c.finished_last_minute, 0) ELSE 0 END
               AS finished_last_minute,
           CASE WHEN $3::boolean THEN coalesce(c.failed_last_minute, 0) ELSE 0 END
               AS failed_last_minute
    FROM names n
    LEFT JOIN taskqueue.queues s ON s.name = n.queue
    LEFT JOIN waiting w ON w.queue = n.queue
    LEFT JOIN blocked b ON b.queue = n.queue
    LEFT JOIN running r ON r.queue = n.queue
    LEFT JOIN taskqueue.queue_retention k ON k.queue = n.queue
    LEFT JOIN counts c ON c.queue = n.queue
    LEFT JOIN serving v ON v.queue = n.queue
    WHERE $1::text IS NULL OR n.queue = $1
    ORDER BY n.queue
    OFFSET coalesce($4::int, 0)
    LIMIT $5::int
)
SELECT (SELECT count(*) FROM live) AS live_workers, q.*
FROM (SELECT 1) AS one
LEFT JOIN states q ON true
ORDER BY q.name;
