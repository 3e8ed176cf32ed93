-- Keys the claim respects: sequences (tasks with the same sequence_key in a
-- queue run one at a time, in enqueue order) and per-key concurrency (at
-- most queues.per_key_concurrency running tasks per concurrency_key).
--   tasks.sequence_key         NULL for most tasks: they pay nothing
--   tasks.sequence_on_failure  'block': its final failure holds the sequence
--   tasks.concurrency_key      counted per queue while running
--   queues.per_key_concurrency the bound (NULL: keys are not limited)
--   sequences                  each key's newest task (its tail)
--   sequence_append()          called by enqueue_dependent_tasks.sql
--   admit_keyed()              called by claim_governed_tasks.sql
-- A sequence is a chain of dependencies (0010_workflows): each task waits
-- (status waiting) for the key's tail as it was when the task was inserted,
-- and the statement that ends the tail for good releases it. Only a
-- sequence's head is ever queued, so the claim never reads, skips or
-- re-reads blocked tasks, and claims of keyless tasks are unchanged.
-- depends: 0013_tenants

ALTER TABLE taskqueue.tasks
    ADD COLUMN sequence_key text,
    ADD COLUMN sequence_on_failure text,
    ADD COLUMN concurrency_key text,
    ADD CONSTRAINT tasks_sequence_on_failure CHECK (sequence_on_failure IN ('release', 'block'));

ALTER TABLE taskqueue.queues
    ADD COLUMN per_key_concurrency integer,
    ADD CONSTRAINT queues_per_key_concurrency_positive CHECK (per_key_concurrency >= 1);

-- What the claim counts per key: running keyed tasks only (keyless rows are
-- outside the predicate and never enter this index).
CREATE INDEX tasks_running_keys_idx ON taskqueue.tasks (queue, concurrency_key)
    WHERE status = 'running' AND concurrency_key IS NOT NULL;

-- 'hold': a dependency of a sequence whose task blocks on failure; a failed
-- parent keeps its child waiting (settle_children, reconcile_waiting).
ALTER TABLE taskqueue.task_dependencies
    DROP CONSTRAINT task_dependencies_on_parent_failure,
    ADD CONSTRAINT task_dependencies_on_parent_failure
        CHECK (on_parent_failure IN ('cancel', 'run', 'hold'));

-- One row per (queue, key) ever used: the newest task of the sequence and
-- whether that task blocks it when it fails. Locked per key by every insert
-- into the sequence, which serialises concurrent producers of one key (and
-- only of that key) so that each new task follows exactly one predecessor.
CREATE TABLE taskqueue.sequences (
    queue       text NOT NULL,
    key         text NOT NULL,
    tail_id     uuid NOT NULL,
    tail_blocks boolean NOT NULL DEFAULT false,
    PRIMARY KEY (queue, key)
) WITH (fillfactor = 70);

-- Append p_last[i] (blocking when p_blocks[i]) to sequence (p_queues[i],
-- p_keys[i]) for each distinct key, and return the tails they had before
-- (none for a new sequence). New keys are inserted first, then existing
-- ones locked, each in (queue, key) order, so concurrent producers never
-- deadlock; each step reads a fresh snapshot (VOLATILE), so a tail
-- committed while this waited for its lock is the one returned.
CREATE FUNCTION taskqueue.sequence_append(p_queues text[], p_keys text[], p_last uuid[],
                                          p_blocks boolean[])
RETURNS TABLE (queue text, key text, tail_id uuid, tail_blocks boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    fresh_q text[];
    fresh_k text[];
BEGIN
    WITH made AS (
        INSERT INTO taskqueue.sequences AS s (queue, key, tail_id, tail_blocks)
        SELECT w.queue, w.key, w.last, w.blocks
        FROM unnest(p_queues, p_keys, p_last, p_blocks) AS w(queue, key, last, blocks)
        ORDER BY w.queue, w.key
        ON CONFLICT ON CONSTRAINT sequences_pkey DO NOTHING
        RETURNING s.queue, s.key
    )
    SELECT coalesce(array_agg(m.queue), '{}'), coalesce(array_agg(m.key), '{}')
    INTO fresh_q, fresh_k FROM made m;
    RETURN QUERY
    WITH RECURSIVE wanted AS (
        SELECT w.queue, w.key, w.last, w.blocks
        FROM unnest(p_queues, p_keys, p_last, p_blocks) AS w(queue, key, last, blocks)
        WHERE (w.queue, w.key) NOT IN (SELECT * FROM unnest(fresh_q, fresh_k))
    ),
    old AS MATERIALIZED (
        SELECT s.queue, s.key, s.tail_id, s.tail_blocks
        FROM taskqueue.sequences s
        JOIN wanted w ON (w.queue, w.key) = (s.queue, s.key)
        ORDER BY s.queue, s.key
        FOR UPDATE OF s
    ),
    walk (queue, key, tail_id, tail_blocks, depth) AS (
        -- A tail cancelled or expired before it ran stands for its own
        -- predecessor (see settle_children): walk back past such tails.
        SELECT o.queue, o.key, o.tail_id, o.tail_blocks, 0 FROM old o
        UNION ALL
        SELECT w.queue, w.key, d.parent_id, d.on_parent_failure = 'hold', w.depth + 1
        FROM walk w
        JOIN taskqueue.tasks t ON t.id = w.tail_id AND t.status IN ('cancelled', 'expired')
        JOIN taskqueue.task_dependencies d ON d.child_id = t.id
        JOIN taskqueue.tasks q ON q.id = d.parent_id
        WHERE q.queue = w.queue AND q.sequence_key = w.key AND w.depth < 10000
    ),
    resolved AS (
        SELECT DISTINCT ON (queue, key) queue, key, tail_id, tail_blocks
        FROM walk ORDER BY queue, key, depth DESC
    ),
    moved AS (
        UPDATE taskqueue.sequences s
        SET tail_id = w.last, tail_blocks = w.blocks
        FROM wanted w, old o
        WHERE (s.queue, s.key) = (w.queue, w.key) AND (o.queue, o.key) = (w.queue, w.key)
    )
    SELECT r.queue, r.key, r.tail_id, r.tail_blocks FROM resolved r;
END
$$;

REVOKE ALL ON FUNCTION taskqueue.sequence_append(text[], text[], uuid[], boolean[]) FROM PUBLIC;

-- How many of p_wanted[i] more tasks of key p_keys[i] in queue p_queues[i]
-- may start now: p_limits[i] minus its running tasks. Called inside the
-- claim (claim_governed_tasks.sql): each key's transaction-level advisory
-- lock is taken first (in one order, so two claims never deadlock), then
-- the running tasks are counted with a fresh snapshot, which includes every
-- claim of the key that committed before the lock was granted. The lock is
-- held until the claim commits, so the next claim of the key counts this
-- one's starts: at most p_limits[i] run at once, whichever workers claim.
-- Claims of different keys wait for nothing (a hash collision of two keys
-- only makes their claims take turns).
CREATE FUNCTION taskqueue.admit_keyed(p_queues text[], p_keys text[], p_wanted integer[],
                                      p_limits integer[])
RETURNS TABLE (queue text, key text, admitted integer)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    -- One statement, the locks taken in the order of the sorted keys.
    PERFORM pg_advisory_xact_lock(s.h)
    FROM (SELECT DISTINCT hashtextextended(w.queue || chr(31) || w.key, 20) AS h
          FROM unnest(p_queues, p_keys) AS w(queue, key)
          ORDER BY 1) s;
    -- A count per key (an index probe each, which stays short while vacuum
    -- is held back), not a scan of every running keyed task.
    RETURN QUERY
    SELECT w.queue, w.key,
           least(w.wanted, greatest(0, w.lim - (
               SELECT count(*)::int FROM taskqueue.tasks t
               WHERE t.status = 'running' AND t.queue = w.queue
                 AND t.concurrency_key = w.key)))::int
    FROM unnest(p_queues, p_keys, p_wanted, p_limits) AS w(queue, key, wanted, lim);
END
$$;

CREATE OR REPLACE FUNCTION taskqueue.settle_children(p_parents uuid[], p_ok boolean[], p_by text)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- Every step here reads a handful of rows by key: a graph inserted a moment
-- ago has no statistics yet, and with them missing the planner would hash
-- whole tables instead (measured: 120 ms a call on a 10,000-task graph), or
-- AND a bitmap of every waiting task into each lookup (8 ms a call).
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET enable_bitmapscan = off
AS $$
DECLARE
    doomed_ids uuid[] := '{}';
    causes uuid[] := '{}';
    moved integer;
    ended_ids uuid[];
BEGIN
    IF p_parents IS NULL OR cardinality(p_parents) = 0 THEN
        RETURN 0;
    END IF;
    IF false = ANY (p_ok) THEN
        -- Sequences: a task of a sequence cancelled or expired before its
        -- predecessor ended hands its place in the chain on: its waiting
        -- successors wait for that predecessor instead (the link moved, the
        -- predecessor's children count raised), so no two tasks of a key
        -- ever run at once. Keyless tasks do not enter the join.
        WITH gone AS MATERIALIZED (
            SELECT g.id, d.parent_id AS pred, d.on_parent_failure AS mode
            FROM unnest(p_parents, p_ok) AS x(id, ok)
            JOIN taskqueue.tasks g ON g.id = x.id
            JOIN taskqueue.task_dependencies d ON d.child_id = g.id
            JOIN taskqueue.tasks q ON q.id = d.parent_id
            WHERE NOT x.ok AND g.sequence_key IS NOT NULL
              AND g.status IN ('cancelled', 'expired')
              AND q.queue = g.queue AND q.sequence_key = g.sequence_key
              AND (q.status IN ('waiting', 'queued', 'running')
                   OR (d.on_parent_failure = 'hold' AND q.status = 'failed'))
        ),
        unlinked AS (
            DELETE FROM taskqueue.task_dependencies d
            USING gone g, taskqueue.tasks c
            WHERE d.parent_id = g.id AND c.id = d.child_id AND c.status = 'waiting'
              AND c.queue = (SELECT queue FROM taskqueue.tasks WHERE id = g.id)
              AND c.sequence_key = (SELECT sequence_key FROM taskqueue.tasks WHERE id = g.id)
            RETURNING d.parent_id, d.child_id
        ),
        relinked AS (
            INSERT INTO taskqueue.task_dependencies (parent_id, child_id, on_parent_failure)
            SELECT g.pred, u.child_id, g.mode
            FROM unlinked u JOIN gone g ON g.id = u.parent_id
            ON CONFLICT DO NOTHING
            RETURNING parent_id
        )
        UPDATE taskqueue.tasks t
        SET children = t.children + r.n
        FROM (SELECT parent_id, count(*)::int AS n FROM relinked GROUP BY parent_id) r
        WHERE t.id = r.parent_id;
        WITH RECURSIVE doom (id, cause) AS (
            SELECT d.child_id, d.parent_id
            FROM unnest(p_parents, p_ok) AS p(id, ok)
            JOIN taskqueue.task_dependencies d ON d.parent_id = p.id
            JOIN taskqueue.tasks c ON c.id = d.child_id
            WHERE NOT p.ok AND d.on_parent_failure = 'cancel' AND c.status = 'waiting'
            UNION
            SELECT d.child_id, d.parent_id
            FROM doom x
            JOIN taskqueue.task_dependencies d ON d.parent_id = x.id
            JOIN taskqueue.tasks c ON c.id = d.child_id
            WHERE d.on_parent_failure = 'cancel' AND c.status = 'waiting'
        )
        SELECT coalesce(array_agg(id ORDER BY id), '{}'), coalesce(array_agg(cause ORDER BY id), '{}')
        INTO doomed_ids, causes
        FROM (SELECT DISTINCT ON (id) id, cause FROM doom ORDER BY id, cause) first_cause;
    END IF;
    -- One row per child to change: cancelled (doomed) or counted down by
    -- n. Every later step is driven from this small set and reaches tasks
    -- through their primary key, the set always on the outer side of the
    -- join: with hash and merge joins off, a plan with tasks outside would
    -- rescan the set once per row, quadratic in the batch.
    WITH targets AS MATERIALIZED (
        SELECT x.id, true AS doomed, 0 AS n, NULL::uuid AS parent, x.cause
        FROM unnest(doomed_ids, causes) AS x(id, cause)
        UNION ALL
        SELECT d.child_id, false, count(*)::int, max(d.parent_id::text)::uuid, NULL::uuid
        FROM unnest(p_parents || doomed_ids) AS r(id)
        JOIN taskqueue.task_dependencies d ON d.parent_id = r.id
        WHERE d.child_id <> ALL (doomed_ids)
          -- A sequence that blocks on failure: its failed task holds the
          -- next one until it is retried and succeeds (or is deleted).
          AND NOT (d.on_parent_failure = 'hold'
                   AND EXISTS (SELECT FROM taskqueue.tasks p
                               WHERE p.id = d.parent_id AND p.status = 'failed'))
        GROUP BY d.child_id
    ),
    -- Locked one by one in id order (the nested loop keeps the order).
    locked AS MATERIALIZED (
        SELECT x.*
        FROM (SELECT * FROM targets ORDER BY id) x
        CROSS JOIN LATERAL (
            SELECT FROM taskqueue.tasks t
            WHERE t.id = x.id AND t.status = 'waiting'
            FOR UPDATE
        ) l
    ),
    changed AS (
        UPDATE taskqueue.tasks t
        SET status = CASE WHEN x.doomed THEN 'cancelled'
                          WHEN t.waiting_on <= x.n THEN 'queued'
                          ELSE 'waiting' END::taskqueue.task_status,
            waiting_on = CASE WHEN x.doomed THEN t.waiting_on
                              ELSE greatest(t.waiting_on - x.n, 0) END,
            run_at = CASE WHEN NOT x.doomed AND t.waiting_on <= x.n
                          THEN greatest(t.run_at, now()) ELSE t.run_at END,
            completed_at = CASE WHEN x.doomed THEN now() END
        FROM locked x
        -- No status test: the row is locked and was waiting when locked (a
        -- test here could be read from the index of waiting tasks, every
        -- one of them for each row).
        WHERE t.id = x.id
        RETURNING t.id, t.queue, t.type, t.priority, t.run_at, t.status, t.attempts,
                  x.cause, x.parent, coalesce(t.tenant, '') AS tenant
    ),
    changed_events AS (
        INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, detail)
        SELECT id,
               CASE WHEN status = 'cancelled' THEN 'task_cancelled' ELSE 'task_ready' END,
               status, attempts,
               CASE WHEN status = 'cancelled'
                    THEN jsonb_build_object('was', 'waiting', 'parent', cause,
                                            'reason', 'parent_failed', 'by', p_by)
                    ELSE jsonb_build_object('parent', parent, 'by', p_by) END
        FROM changed
        WHERE status <> 'waiting'
    ),
    counted AS (
        INSERT INTO taskqueue.queue_counts (queue, cancelled)
        SELECT queue, count(*) FROM changed WHERE status = 'cancelled' GROUP BY queue
    ),
    lanes_opened AS (
        INSERT INTO taskqueue.claim_lanes (queue, type, priority, tenant)
        SELECT DISTINCT queue, type, priority, tenant FROM changed WHERE status = 'queued'
        ON CONFLICT DO NOTHING
    ),
    woken AS (
        SELECT pg_notify('taskqueue', CASE WHEN length(q) > 7000 THEN '*' ELSE q END)
        FROM (SELECT string_agg(DISTINCT queue, ',') AS q FROM changed
              WHERE status = 'queued') s
        WHERE q IS NOT NULL
    )
    SELECT count(*) FILTER (WHERE status <> 'waiting') + 0 * (SELECT count(*) FROM woken),
           array_agg(id) FILTER (WHERE status = 'cancelled')
    INTO moved, ended_ids
    FROM changed;
    IF ended_ids IS NOT NULL THEN
        PERFORM taskqueue.cascade_ended(ended_ids);
    END IF;
    RETURN moved;
END
$$;

REVOKE ALL ON FUNCTION taskqueue.settle_children(uuid[], boolean[], text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION taskqueue.reconcile_waiting(p_limit integer, p_by text)
RETURNS TABLE (released bigint, cancelled bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    doomed_ids uuid[];
    ended_ids uuid[];
BEGIN
    WITH stuck AS MATERIALIZED (
        SELECT t.id
        FROM taskqueue.tasks t
        WHERE t.status = 'waiting'
          AND NOT EXISTS (
              SELECT FROM taskqueue.task_dependencies d
              JOIN taskqueue.tasks p ON p.id = d.parent_id
              WHERE d.child_id = t.id
                AND (p.status IN ('waiting', 'queued', 'running')
                     OR (d.on_parent_failure = 'hold' AND p.status = 'failed')))
        ORDER BY t.id
        LIMIT p_limit
        FOR UPDATE OF t SKIP LOCKED
    ),
    judged AS (
        SELECT s.id,
               (SELECT min(d.parent_id::text)::uuid
                FROM taskqueue.task_dependencies d
                JOIN taskqueue.tasks p ON p.id = d.parent_id
                WHERE d.child_id = s.id AND d.on_parent_failure = 'cancel'
                  -- As text: 'expired' comes with 0011_expired_status.
                  AND p.status::text IN ('failed', 'cancelled', 'expired')) AS doomed_by
        FROM stuck s
    ),
    changed AS (
        UPDATE taskqueue.tasks t
        SET status = CASE WHEN j.doomed_by IS NOT NULL THEN 'cancelled'
                          ELSE 'queued' END::taskqueue.task_status,
            waiting_on = 0,
            run_at = CASE WHEN j.doomed_by IS NULL THEN greatest(t.run_at, now())
                          ELSE t.run_at END,
            completed_at = CASE WHEN j.doomed_by IS NOT NULL THEN now() END
        FROM judged j
        WHERE t.id = j.id AND t.status = 'waiting'
        RETURNING t.id, t.queue, t.type, t.priority, t.status, t.attempts, t.children,
                  j.doomed_by, coalesce(t.tenant, '') AS tenant
    ),
    changed_events AS (
        INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, detail)
        SELECT id,
               CASE WHEN status = 'cancelled' THEN 'task_cancelled' ELSE 'task_ready' END,
               status, attempts,
               CASE WHEN status = 'cancelled'
                    THEN jsonb_build_object('was', 'waiting', 'parent', doomed_by,
                                            'reason', 'parent_failed', 'by', 'reconciler',
                                            'worker', p_by)
                    ELSE jsonb_build_object('by', 'reconciler', 'worker', p_by) END
        FROM changed
    ),
    counted AS (
        INSERT INTO taskqueue.queue_counts (queue, cancelled)
        SELECT queue, count(*) FROM changed WHERE status = 'cancelled' GROUP BY queue
    ),
    lanes_opened AS (
        INSERT INTO taskqueue.claim_lanes (queue, type, priority, tenant)
        SELECT DISTINCT queue, type, priority, tenant FROM changed WHERE status = 'queued'
        ON CONFLICT DO NOTHING
    ),
    woken AS (
        SELECT pg_notify('taskqueue', CASE WHEN length(q) > 7000 THEN '*' ELSE q END)
        FROM (SELECT string_agg(DISTINCT queue, ',') AS q FROM changed
              WHERE status = 'queued') s
        WHERE q IS NOT NULL
    )
    SELECT count(*) FILTER (WHERE status = 'queued'),
           count(*) FILTER (WHERE status = 'cancelled') + 0 * (SELECT count(*) FROM woken),
           array_agg(id) FILTER (WHERE status = 'cancelled' AND children > 0),
           array_agg(id) FILTER (WHERE status = 'cancelled')
    INTO released, cancelled, doomed_ids, ended_ids
    FROM changed;
    IF ended_ids IS NOT NULL THEN
        PERFORM taskqueue.cascade_ended(ended_ids);
    END IF;
    -- What these cancels cause further down is settled as any cancel's is.
    IF doomed_ids IS NOT NULL THEN
        PERFORM taskqueue.settle_children(
            doomed_ids, array_fill(false, ARRAY[cardinality(doomed_ids)]), p_by);
    END IF;
    RETURN NEXT;
END
$$;

REVOKE ALL ON FUNCTION taskqueue.reconcile_waiting(integer, text) FROM PUBLIC;

-- Fair claiming between tenants (0013_tenants): a claim lane is a queue,
-- type, priority and tenant ('' for tasks of no tenant), so the claim can
-- read each tenant's due tasks on their own and take them in turns
-- (claim_tasks.sql) instead of in one run_at order where a tenant's flood
-- would come first. The claim index gets the tenant before run_at; tasks of
-- no tenant all share '' there, so single-tenant installs read their lanes
-- exactly as before.
ALTER TABLE taskqueue.claim_lanes ADD COLUMN tenant text NOT NULL DEFAULT '';
ALTER TABLE taskqueue.claim_lanes
    DROP CONSTRAINT claim_lanes_pkey,
    ADD PRIMARY KEY (queue, type, priority, tenant);
INSERT INTO taskqueue.claim_lanes (queue, type, priority, tenant)
SELECT DISTINCT queue, type, priority, tenant
FROM taskqueue.tasks
WHERE status IN ('queued', 'running') AND tenant IS NOT NULL
ON CONFLICT DO NOTHING;

CREATE INDEX tasks_claim_lane_idx
    ON taskqueue.tasks (queue, type, priority DESC, (coalesce(tenant, '')), run_at, id)
    WHERE status = 'queued';
DROP INDEX taskqueue.tasks_claim_idx;
ALTER INDEX taskqueue.tasks_claim_lane_idx RENAME TO tasks_claim_idx;
