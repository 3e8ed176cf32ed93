-- Claim up to $2 due tasks of the types this worker can run, in claim order
-- (priority, then run_at, then id), within each queue's pause and limits,
-- and write each one's task_started event.
--   $1 text[] queues to claim from
--   $2 int    how many rows at most (the worker's free capacity)
--   $3 text   worker id, recorded as locked_by
--   $4 float8 lease length in seconds; locked_until comes from the database clock
--   $5 text[] task types this worker has handlers for
-- Queue settings (taskqueue.queues): a paused queue gives nothing; a queue
-- with a concurrency limit gives at most limit - running; one with a rate
-- limit at most limit - (tasks started within the last period). Only the
-- rows of limited queues are locked, so workers claiming from the same
-- limited queue take turns (and each sees the others' claims: after waiting
-- for the lock, FOR UPDATE reads the newest row), while claims of unlimited
-- queues never wait on anything.
-- The candidate CTEs are MATERIALIZED on purpose: without the fence the
-- planner may inline them into the UPDATE and lock/update more rows than
-- LIMIT allows. Each (queue, type) is walked on its own through
-- tasks_claim_idx (queue, type, priority DESC, run_at, id): a deep backlog in
-- one queue or of a type this worker cannot run costs it nothing. With several
-- busy (queue, type) pairs a few surplus rows stay locked until this
-- statement's commit, microseconds later, and other workers skip past them.
WITH paused AS (
    SELECT s.name
    FROM taskqueue.queues s
    WHERE s.name = ANY ($1::text[]) AND s.paused
),
limited AS MATERIALIZED (
    SELECT s.name, s.concurrency_limit, s.running, s.rate_limit,
           (SELECT coalesce(sum(w.n), 0)::int
            FROM unnest(s.rate_window_at, s.rate_window_n) AS w(at, n)
            WHERE w.at > now() - make_interval(secs => s.rate_period_seconds)) AS started
    FROM taskqueue.queues s
    WHERE s.name = ANY ($1::text[]) AND NOT s.paused
      AND (s.concurrency_limit IS NOT NULL OR s.rate_limit IS NOT NULL)
    ORDER BY s.name  -- one order for every worker: locking several rows never deadlocks
    FOR UPDATE
),
allowance AS (
    SELECT q.queue,
           CASE
               WHEN q.queue IN (SELECT name FROM paused) THEN 0
               ELSE greatest(0, least($2::int,
                                      coalesce(l.concurrency_limit - l.running, $2::int),
                                      coalesce(l.rate_limit - l.started, $2::int)))
           END AS n
    FROM unnest($1::text[]) AS q(queue)
    LEFT JOIN limited l ON l.name = q.queue
),
ranked AS MATERIALIZED (
    SELECT c.id, c.queue, c.priority, c.run_at, a.n,
           row_number() OVER (PARTITION BY c.queue
                              ORDER BY c.priority DESC, c.run_at, c.id) AS rank
    FROM allowance a
    CROSS JOIN unnest($5::text[]) AS k(type)
    CROSS JOIN LATERAL (
        SELECT t.id, t.queue, t.priority, t.run_at
        FROM taskqueue.tasks t
        WHERE t.status = 'queued' AND t.queue = a.queue AND t.type = k.type
          AND t.run_at <= now()
        ORDER BY t.priority DESC, t.run_at, t.id
        LIMIT a.n
        FOR UPDATE SKIP LOCKED
    ) c
    WHERE a.n > 0
),
candidates AS MATERIALIZED (
    -- A queue's allowance holds across its types, not per type.
    SELECT id FROM ranked
    WHERE rank <= n
    ORDER BY priority DESC, run_at, id
    LIMIT $2
),
claimed AS (
    UPDATE taskqueue.tasks AS t
    SET status = 'running',
        attempts = t.attempts + 1,
        locked_by = $3,
        locked_until = now() + make_interval(secs => $4),
        started_at = now()
    -- = ANY(ARRAY(...)) keeps the update on the primary key index; a join
    -- here may be planned as a hash join over a sequential scan of the table.
    WHERE t.id = ANY (ARRAY(SELECT id FROM candidates))
    RETURNING t.id, t.queue, t.type, t.payload::text AS payload, t.priority, t.attempts,
              t.max_retries, t.timeout_seconds, t.run_at
),
started_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, worker_id)
    SELECT id, 'task_started', 'running', attempts, $3 FROM claimed
),
counted AS (
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
    FROM (SELECT queue, count(*)::int AS n FROM claimed GROUP BY queue) AS c
    WHERE s.name = c.queue AND s.name IN (SELECT name FROM limited)
)
SELECT * FROM claimed ORDER BY priority DESC, run_at, id;
