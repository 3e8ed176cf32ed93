-- write-path: worker
-- write-path-set: enable_seqscan = off
-- Claim up to $2 due tasks of the types this worker can run, tenants taking
-- turns (each tenant's by priority, then run_at, then id; candidates below),
-- and write each one's task_started event:
-- the claim for queues that have no settings (no pause, no limit), which is
-- nearly always what a worker runs.
--   $1 text[] queues to claim from
--   $2 int    how many rows at most (the worker's free capacity)
--   $3 text   worker id, recorded as locked_by
--   $4 float8 lease length in seconds; locked_until comes from the database clock
--   $5 text[] task types this worker has handlers for
--   $6 text[] of those, the types whose handlers read ctx.parent_results
--             (the claim reads their parents' outcomes; _claim_tail.sql)
-- A queue that has a row in taskqueue.queues (paused, or limited), and the
-- lanes of a tenant with a rate limit (taskqueue.tenant_rates), are skipped
-- here, whatever the worker believes: those go through
-- claim_governed_tasks.sql, which the worker switches to when it sees such a
-- row (at once on the NOTIFY that a settings change sends, and at the latest
-- within a poll interval).
-- The CTEs are MATERIALIZED on purpose: without the fence the planner may
-- inline them into the UPDATE and lock/update more rows than LIMIT allows.
-- Each lane (queue, type, priority, tenant; taskqueue.claim_lanes) is read on
-- its own through tasks_claim_idx (queue, type, priority DESC, tenant, run_at,
-- id), from the
-- lane's floor: the index entries that earlier claims left behind lie below
-- it, so a claim reads about what it takes even while vacuum cannot remove
-- them. A deep backlog in another queue or of a type this worker cannot run
-- costs it nothing, and a task is never claimed by a worker that would have
-- to fail it. Per tenant, lanes are taken a priority at a time, highest
-- first, and its read stops as soon as it has enough: lanes of the same
-- priority are merged by run_at, lower priorities are not read at all. The
-- surplus rows (up to $2 per tenant with due work, less what is taken) stay
-- locked until this statement's commit, microseconds later, and other
-- workers skip past them meanwhile.
WITH open_lanes AS MATERIALIZED (
    SELECT l.queue, l.type, l.priority, l.tenant, coalesce(l.floor_at, '-infinity') AS floor_at
    FROM taskqueue.claim_lanes l
    WHERE l.queue = ANY ($1::text[]) AND l.type = ANY ($5::text[])
      AND NOT EXISTS (SELECT FROM taskqueue.queues s WHERE s.name = l.queue)
      -- A tenant with a rate limit on starts (0017_tenant_rates) is left to
      -- the governed claim too; the lanes of tasks of no tenant ('') never
      -- look (OR tests its arms in order). A scalar subquery rather than NOT
      -- EXISTS: a probe of the primary key per tenant's lane, never a hash
      -- of the whole table built by each claim.
      AND (l.tenant = '' OR (SELECT r.tenant FROM taskqueue.tenant_rates r
                             WHERE r.tenant = l.tenant) IS NULL)
),
heads AS MATERIALIZED (
    -- Each tenant's best $2 due tasks (by priority, then run_at), locked,
    -- and its turn: the tenant's first task is turn 1, its second turn 2...
    SELECT tn.tenant, c.id,
           row_number() OVER (PARTITION BY tn.tenant
                              ORDER BY c.priority DESC, c.run_at, c.id) AS turn
    FROM (SELECT DISTINCT tenant FROM open_lanes) AS tn
    CROSS JOIN LATERAL (
        SELECT c.id, c.priority, c.run_at
        FROM (SELECT DISTINCT priority FROM open_lanes o WHERE o.tenant = tn.tenant
              ORDER BY priority DESC) AS g
        CROSS JOIN LATERAL (
            SELECT w.id, g.priority, w.run_at
            FROM open_lanes l
            CROSS JOIN LATERAL (
                SELECT t.id, t.run_at
                FROM taskqueue.tasks t
                WHERE t.status = 'queued' AND t.queue = l.queue AND t.type = l.type
                  AND t.priority = l.priority AND coalesce(t.tenant, '') = l.tenant
                  AND t.run_at >= l.floor_at AND t.run_at <= now()
                  -- Never started once expired: passed over (not locked), and
                  -- ended by the expiry sweep (expire_tasks.sql). A NULL test
                  -- for tasks without an expiry.
                  AND (t.expires_at IS NULL OR t.expires_at > now())
                ORDER BY t.run_at, t.id
                LIMIT $2
                FOR UPDATE SKIP LOCKED
            ) w
            WHERE l.priority = g.priority AND l.tenant = tn.tenant
            ORDER BY w.run_at, w.id
            LIMIT $2
        ) c
        LIMIT $2
    ) c
),
rotation AS MATERIALIZED (
    -- This claim's place to start the turns from (one draw, however many
    -- rows read it).
    SELECT random() AS start
),
candidates AS MATERIALIZED (
    -- Fair claiming: the heads taken in turns: every tenant's first, then
    -- every tenant's second, and so on. Within a turn tenants come in name
    -- order from a place drawn at random for each claim, wrapping round, so
    -- claims of one task (a worker whose slots free one at a time) serve
    -- tenants in turn too and no pattern of claims keeps a tenant at the
    -- back: a tenant's flood costs another tenant at most one turn per
    -- claim, and a claim of n tasks among t tenants with due work serves
    -- each with probability at least n/t (every one, when n >= t), whatever
    -- its tasks' age or priority (priority orders a tenant's own tasks).
    -- Tasks of no tenant are one tenant (''). One arm runs, chosen by a
    -- test made once: a single tenant (nearly every install) takes its
    -- turns in exactly the old order, with nothing drawn or ranked.
    (SELECT h.id FROM heads h
     WHERE (SELECT count(DISTINCT tenant) FROM open_lanes) = 1
     ORDER BY h.turn
     LIMIT $2)
    UNION ALL
    (SELECT z.id
     FROM (
         SELECT w.id, w.turn, w.place, max(w.place) OVER () + 1 AS tenants
         FROM (SELECT h.id, h.turn, dense_rank() OVER (ORDER BY h.tenant) - 1 AS place
               FROM heads h) w
     ) z
     CROSS JOIN rotation r
     WHERE (SELECT count(DISTINCT tenant) FROM open_lanes) > 1
     ORDER BY z.turn, (z.place + z.tenants - floor(r.start * z.tenants)::bigint) % z.tenants
     LIMIT $2)
),
-- include: _claim_tail.sql
SELECT * FROM claimed ORDER BY priority DESC, run_at, id;
