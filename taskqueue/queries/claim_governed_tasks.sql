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
--   $6 text[] of those, the types whose handlers read ctx.parent_results
--             (the claim reads their parents' outcomes; _claim_tail.sql)
-- A paused queue gives nothing; a queue with a concurrency limit gives at
-- most limit - running; one with a rate limit at most limit - (tasks started
-- within the last period). Only the rows of limited queues are locked, so
-- workers claiming from the same limited queue take turns (and each sees the
-- others' claims: after waiting for the lock, FOR UPDATE reads the newest
-- row), while claims of other queues never wait on anything.
-- With per_key_concurrency set, tasks of a concurrency_key start only
-- while fewer than that many of the key run (keys_admitted below); the
-- rows read beyond what is taken stay locked until this statement commits.
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
    -- n: how many the queue may start; wide: how many of its due tasks to
    -- read for that. A queue with per_key_concurrency reads more than n, so
    -- that tasks of keys at their limit do not use up the claim.
    SELECT q.queue, x.n, p.per_key_concurrency AS per_key,
           CASE WHEN p.per_key_concurrency IS NULL THEN x.n ELSE x.n + 16 END AS wide
    FROM unnest($1::text[]) AS q(queue)
    LEFT JOIN taskqueue.queues p ON p.name = q.queue
    LEFT JOIN limited l ON l.name = q.queue
    CROSS JOIN LATERAL (
        SELECT CASE WHEN p.paused THEN 0
                    ELSE greatest(0, least($2::int, coalesce(l.free_slots, $2::int),
                                           coalesce(l.free_starts, $2::int)))
               END AS n) x
),
due AS MATERIALIZED (
    SELECT c.id, c.queue, tn.tenant, c.priority, c.run_at, c.concurrency_key, a.n, a.per_key
    FROM allowance a
    CROSS JOIN LATERAL (SELECT DISTINCT l.tenant FROM taskqueue.claim_lanes l
                        WHERE l.queue = a.queue AND l.type = ANY ($5::text[])) tn
    CROSS JOIN LATERAL (
        -- A queue's allowance holds across its lanes (types, priorities and
        -- tenants), each read from its floor as in claim_tasks.sql, each
        -- tenant's on their own (they take turns below).
        SELECT w.id, w.queue, w.priority, w.run_at, w.concurrency_key
        FROM taskqueue.claim_lanes l
        CROSS JOIN LATERAL (
            SELECT t.id, t.queue, t.priority, t.run_at, t.concurrency_key
            FROM taskqueue.tasks t
            WHERE t.status = 'queued' AND t.queue = l.queue AND t.type = l.type
              AND t.priority = l.priority AND coalesce(t.tenant, '') = l.tenant
              AND t.run_at >= coalesce(l.floor_at, '-infinity') AND t.run_at <= now()
              AND (t.expires_at IS NULL OR t.expires_at > now())  -- see claim_tasks.sql
            ORDER BY t.run_at, t.id
            LIMIT a.wide
            FOR UPDATE SKIP LOCKED
        ) w
        WHERE l.queue = a.queue AND l.type = ANY ($5::text[]) AND l.tenant = tn.tenant
        ORDER BY w.priority DESC, w.run_at, w.id
        LIMIT a.wide
    ) c
    WHERE a.n > 0
),
keys_admitted AS MATERIALIZED (
    -- Per-key concurrency: how many more of each key may start, decided by
    -- taskqueue.admit_keyed (0014_claim_keys) under the key's lock, from
    -- the key's running tasks. No call when no due task has a limited key.
    SELECT k.queue, k.key, k.admitted
    FROM (SELECT array_agg(queue) AS qs, array_agg(concurrency_key) AS ks,
                 array_agg(wanted) AS ns, array_agg(per_key) AS ls
          FROM (SELECT queue, concurrency_key, count(*)::int AS wanted, min(per_key) AS per_key
                FROM due
                WHERE per_key IS NOT NULL AND concurrency_key IS NOT NULL
                GROUP BY queue, concurrency_key) g) x
    CROSS JOIN LATERAL taskqueue.admit_keyed(x.qs, x.ks, x.ns, x.ls) k
    WHERE x.qs IS NOT NULL
),
candidates AS MATERIALIZED (
    -- Tenants take turns as in claim_tasks.sql, within each queue's allowance.
    SELECT v.id
    FROM (
        SELECT y.*, row_number() OVER (PARTITION BY y.queue
                                       ORDER BY y.turn, y.priority DESC, y.run_at, y.id)
                        AS queue_rank
        FROM (
            SELECT z.*, row_number() OVER (PARTITION BY z.queue, z.tenant
                                           ORDER BY z.priority DESC, z.run_at, z.id) AS turn
            FROM (
                SELECT d.*, k.admitted,
                       row_number() OVER (PARTITION BY d.queue, d.concurrency_key
                                          ORDER BY d.priority DESC, d.run_at, d.id) AS key_rank
                FROM due d
                LEFT JOIN keys_admitted k
                  ON k.queue = d.queue AND k.key = d.concurrency_key
            ) z
            WHERE z.admitted IS NULL OR z.key_rank <= z.admitted
        ) y
    ) v
    WHERE v.queue_rank <= v.n
    ORDER BY v.turn, v.priority DESC, v.run_at, v.id
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
