-- write-path: worker
-- Claim up to $2 due tasks of the types this worker can run, in claim order,
-- within each queue's pause and limits (taskqueue.queues), and write each
-- one's task_started event. The worker sends this instead of
-- claim_tasks.sql while any of its queues has settings.
--   $1 text[] queues to claim from
--   $2 int    how many rows at most (the worker's free capacity)
--   $3 text   worker id, recorded as locked_by
--   $4 float8 lease length in seconds; locked_until comes from the database clock
--   $5 text[] task types this worker has handlers for
-- A paused queue gives nothing; a queue with a concurrency limit gives at
-- most limit - running; one with a rate limit at most limit - (tasks started
-- within the last period). Only the rows of limited queues are locked, so
-- workers claiming from the same limited queue take turns (and each sees the
-- others' claims: after waiting for the lock, FOR UPDATE reads the newest
-- row), while claims of other queues never wait on anything.
-- The CTEs are MATERIALIZED on purpose (see claim_tasks.sql).
WITH limited AS MATERIALIZED (
    SELECT s.name,
           s.concurrency_limit - s.running AS free_slots,
           s.rate_limit - (SELECT coalesce(sum(w.n), 0)::int
                           FROM unnest(s.rate_window_at, s.rate_window_n) AS w(at, n)
                           WHERE w.at > now() - make_interval(secs => s.rate_period_seconds))
               AS free_starts
    FROM taskqueue.queues s
    WHERE s.name = ANY ($1::text[]) AND NOT s.paused
      AND (s.concurrency_limit IS NOT NULL OR s.rate_limit IS NOT NULL)
    ORDER BY s.name  -- one order for every worker: locking several rows never deadlocks
    FOR UPDATE
),
allowance AS MATERIALIZED (
    SELECT q.queue,
           CASE WHEN p.paused THEN 0
                ELSE greatest(0, least($2::int, coalesce(l.free_slots, $2::int),
                                       coalesce(l.free_starts, $2::int)))
           END AS n
    FROM unnest($1::text[]) AS q(queue)
    LEFT JOIN taskqueue.queues p ON p.name = q.queue
    LEFT JOIN limited l ON l.name = q.queue
),
candidates AS MATERIALIZED (
    SELECT c.id
    FROM allowance a
    CROSS JOIN LATERAL (
        -- A queue's allowance holds across its lanes (types and
        -- priorities), each read from its floor as in claim_tasks.sql.
        SELECT w.id, w.priority, w.run_at
        FROM taskqueue.claim_lanes l
        CROSS JOIN LATERAL (
            SELECT t.id, t.priority, t.run_at
            FROM taskqueue.tasks t
            WHERE t.status = 'queued' AND t.queue = l.queue AND t.type = l.type
              AND t.priority = l.priority
              AND t.run_at >= coalesce(l.floor_at, '-infinity') AND t.run_at <= now()
              AND (t.expires_at IS NULL OR t.expires_at > now())  -- see claim_tasks.sql
            ORDER BY t.run_at, t.id
            LIMIT a.n
            FOR UPDATE SKIP LOCKED
        ) w
        WHERE l.queue = a.queue AND l.type = ANY ($5::text[])
        ORDER BY w.priority DESC, w.run_at, w.id
        LIMIT a.n
    ) c
    WHERE a.n > 0
    ORDER BY c.priority DESC, c.run_at, c.id
    LIMIT $2
),
-- include: _claim_tail.sql
, counted AS (
    -- Limited queues count what this claim started: running tasks, and an
    -- entry in the rate window (older entries dropped).
    UPDATE taskqueue.queues s
    SET running = CASE WHEN s.concurrency_limit IS NULL THEN s.running
                       ELSE s.running + c.n END,
        rate_window_at = CASE WHEN s.rate_limit IS NULL THEN '{}'::timestamptz[]
            ELSE ARRAY(SELECT w.at FROM unnest(s.rate_window_at, s.rate_window_n) AS w(at, n)
                       WHERE w.at > now() - make_interval(secs => s.rate_period_seconds)
                       ORDER BY w.at) || now() END,
        rate_window_n = CASE WHEN s.rate_limit IS NULL THEN '{}'::int[]
            ELSE ARRAY(SELECT w.n FROM unnest(s.rate_window_at, s.rate_window_n) AS w(at, n)
                       WHERE w.at > now() - make_interval(secs => s.rate_period_seconds)
                       ORDER BY w.at) || c.n END
    FROM (SELECT queue, count(*)::int AS n FROM claimed
          WHERE queue IN (SELECT name FROM limited)
          GROUP BY queue) AS c
    WHERE s.name = c.queue
)
SELECT * FROM claimed ORDER BY priority DESC, run_at, id;
