-- write-path: worker
-- write-path-requires: 0026_keys_per_tenant
-- write-path-set: enable_seqscan = off
-- Claim up to $2 due tasks of the types this worker can run, in claim order,
-- within each queue's pause and limits (taskqueue.queues), and write each
-- one's task_started event. The worker sends this instead of
-- claim_tasks.sql while any of its queues has settings or a lane of a tenant
-- with a rate limit on starts.
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
-- A tenant with a rate limit on starts (taskqueue.tenant_rates) starts at
-- most its limit - (its tasks started within the last period), across all
-- queues: its row is locked as a limited queue's is, but only by claims that
-- found due tasks of it (tenants_gated below), and a tenant whose window
-- was full when the statement began is not even read; without such a
-- tenant among the due tasks, nothing more is ranked or written. Locks are
-- taken in one order by every claim: queues' rows, then tenants' rows, then
-- keys.
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
                        WHERE l.queue = a.queue AND l.type = ANY ($5::text[])
                          -- Not a rate-limited tenant whose window is full
                          -- (read without a lock: it only fills up meanwhile).
                          AND (l.tenant = '' OR NOT EXISTS (
                              SELECT FROM taskqueue.tenant_rates r
                              WHERE r.tenant = l.tenant
                                AND r.rate_limit <= (
                                    SELECT coalesce(sum(w.n), 0)
                                    FROM unnest(r.rate_window_at, r.rate_window_n) AS w(at, n)
                                    WHERE w.at > now() - make_interval(
                                                         secs => r.rate_period_seconds))))) tn
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
tenants_gated AS MATERIALIZED (
    -- Rate-limited tenants with due tasks here: their rows locked (in name
    -- order, after the queues' rows: the count of limited reads all of it
    -- first) and read fresh as the queue's are, and how many more of their
    -- tasks may start now.
    SELECT r.tenant,
           r.rate_limit - (SELECT coalesce(sum(w.n), 0)::int
                           FROM unnest(r.rate_window_at, r.rate_window_n) AS w(at, n)
                           WHERE w.at > now() - make_interval(secs => r.rate_period_seconds))
               AS free_starts
    FROM taskqueue.tenant_rates r
    -- Read from the limited tenants' side: without any, due is not read again.
    WHERE EXISTS (SELECT FROM due d WHERE d.tenant = r.tenant)
      AND (SELECT count(*) FROM limited) >= 0
    ORDER BY r.tenant
    FOR UPDATE
),
keys_admitted AS MATERIALIZED (
    -- Per-key concurrency: how many more of each key may start, decided by
    -- taskqueue.admit_keyed (0026_keys_per_tenant: a key is its tenant's)
    -- under the key's lock, from the key's running tasks. No call when no
    -- due task has a limited key.
    SELECT k.queue, k.tenant, k.key, k.admitted
    FROM (SELECT array_agg(queue) AS qs, array_agg(tenant) AS ts,
                 array_agg(concurrency_key) AS ks,
                 array_agg(wanted) AS ns, array_agg(per_key) AS ls
          FROM (SELECT queue, tenant, concurrency_key, count(*)::int AS wanted,
                       min(per_key) AS per_key
                FROM due
                WHERE per_key IS NOT NULL AND concurrency_key IS NOT NULL
                GROUP BY queue, tenant, concurrency_key) g) x
    CROSS JOIN LATERAL taskqueue.admit_keyed(x.qs, x.ts, x.ks, x.ns, x.ls) k
    WHERE x.qs IS NOT NULL
      -- Keys are locked after tenants' rows: the count reads all of
      -- tenants_gated before admit_keyed() is called.
      AND (SELECT count(*) FROM tenants_gated) >= 0
),
keyed AS NOT MATERIALIZED (
    -- The due tasks within their keys' allowances.
    SELECT u.id, u.queue, u.tenant, u.priority, u.run_at, u.n
    FROM (
        SELECT d.*, k.admitted,
               row_number() OVER (PARTITION BY d.queue, d.tenant, d.concurrency_key
                                  ORDER BY d.priority DESC, d.run_at, d.id) AS key_rank
        FROM due d
        LEFT JOIN keys_admitted k
          ON k.queue = d.queue AND k.tenant = d.tenant AND k.key = d.concurrency_key
    ) u
    WHERE u.admitted IS NULL OR u.key_rank <= u.admitted
),
rated AS NOT MATERIALIZED (
    -- Within the rate-limited tenants' allowances, a tenant's best tasks
    -- across the queues first. One arm runs, chosen by a test made once: a
    -- claim that found no limited tenant's task ranks nothing more.
    SELECT k.id, k.queue, k.tenant, k.priority, k.run_at, k.n
    FROM keyed k
    WHERE NOT EXISTS (SELECT FROM tenants_gated)
    UNION ALL
    SELECT r.id, r.queue, r.tenant, r.priority, r.run_at, r.n
    FROM (
        SELECT k.*, g.free_starts,
               row_number() OVER (PARTITION BY k.tenant
                                  ORDER BY k.priority DESC, k.run_at, k.id) AS tenant_rank
        FROM keyed k
        LEFT JOIN tenants_gated g ON g.tenant = k.tenant
    ) r
    WHERE EXISTS (SELECT FROM tenants_gated)
      AND (r.free_starts IS NULL OR r.tenant_rank <= r.free_starts)
),
rotation AS MATERIALIZED (
    -- Where this claim's turns start, as in claim_tasks.sql.
    SELECT random() AS start
),
candidates AS MATERIALIZED (
    -- Tenants take turns as in claim_tasks.sql (in name order from the
    -- rotation's place), within each queue's allowance.
    SELECT v.id
    FROM (
        SELECT x.*, row_number() OVER (PARTITION BY x.queue
                                       ORDER BY x.turn, x.rotated) AS queue_rank
        FROM (
            SELECT y.*,
                   (y.place + y.tenants - floor(r.start * y.tenants)::bigint) % y.tenants
                       AS rotated
            FROM (
                SELECT u.*, max(u.place) OVER () + 1 AS tenants
                FROM (
                    SELECT z.*,
                           row_number() OVER (PARTITION BY z.queue, z.tenant
                                              ORDER BY z.priority DESC, z.run_at, z.id) AS turn,
                           dense_rank() OVER (ORDER BY z.tenant) - 1 AS place
                    FROM rated z
                ) u
            ) y
            CROSS JOIN rotation r
        ) x
    ) v
    WHERE v.queue_rank <= v.n
    ORDER BY v.turn, v.rotated, v.priority DESC, v.run_at, v.id
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
),
tenants_counted AS (
    -- Rate-limited tenants count what this claim started the same way. The
    -- window keeps entries for up to twice the period (at most 30 s more):
    -- a claim's now() is when its statement began, so one that waited for
    -- the row's lock appends an entry older than the newest, and must still
    -- count the entries that were within its period then.
    UPDATE taskqueue.tenant_rates r
    SET rate_window_at = ARRAY(
            SELECT w.at FROM unnest(r.rate_window_at, r.rate_window_n) AS w(at, n)
            WHERE w.at > now() - make_interval(
                             secs => r.rate_period_seconds + least(r.rate_period_seconds, 30))
            ORDER BY w.at) || now(),
        rate_window_n = ARRAY(
            SELECT w.n FROM unnest(r.rate_window_at, r.rate_window_n) AS w(at, n)
            WHERE w.at > now() - make_interval(
                             secs => r.rate_period_seconds + least(r.rate_period_seconds, 30))
            ORDER BY w.at) || c.n
    FROM (SELECT d.tenant, count(*)::int AS n
          FROM claimed x
          JOIN due d ON d.id = x.id
          WHERE EXISTS (SELECT FROM tenants_gated)  -- tested once: no join without one
            AND d.tenant IN (SELECT tenant FROM tenants_gated)
          GROUP BY d.tenant) AS c
    WHERE r.tenant = c.tenant
)
SELECT * FROM claimed ORDER BY priority DESC, run_at, id;
