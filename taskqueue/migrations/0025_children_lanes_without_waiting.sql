-- A completion that releases a workflow's children no longer waits on a raise
-- of their claim lanes: settle_children() (as in 0022_settle_in_one_pass
-- otherwise) inserts only the lanes its snapshot lacks, as the statements that
-- queue tasks do (queries/_open_lanes.sql). INSERT ... ON CONFLICT DO NOTHING
-- alone waits for any uncommitted change to an existing lane's row, and
-- workers update each lane's row twice a second.
-- depends: 0024_paced_vacuum_of_tasks

CREATE OR REPLACE FUNCTION taskqueue.settle_children(p_parents uuid[], p_ok boolean[], p_by text)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
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
              AND g.status::text IN ('cancelled', 'expired')
              AND q.queue = g.queue AND q.sequence_key = g.sequence_key
              AND (q.status::text IN ('waiting', 'queued', 'running')
                   OR (d.on_parent_failure = 'hold' AND q.status::text = 'failed'))
        ),
        unlinked AS (
            DELETE FROM taskqueue.task_dependencies d
            USING gone g, taskqueue.tasks c
            WHERE d.parent_id = g.id AND c.id = d.child_id AND c.status::text = 'waiting'
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
            WHERE NOT p.ok AND d.on_parent_failure = 'cancel' AND c.status::text = 'waiting'
            UNION
            SELECT d.child_id, d.parent_id
            FROM doom x
            JOIN taskqueue.task_dependencies d ON d.parent_id = x.id
            JOIN taskqueue.tasks c ON c.id = d.child_id
            WHERE d.on_parent_failure = 'cancel' AND c.status::text = 'waiting'
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
                               WHERE p.id = d.parent_id AND p.status::text = 'failed'))
        GROUP BY d.child_id
    ),
    -- Each child is locked and changed in one pass, in id order, so two
    -- completers that settle the same children wait for each other instead
    -- of deadlocking. The order holds whichever side the planner puts outside
    -- the nested loop (hash and merge joins are off): the sorted targets, or
    -- tasks read whole in id order through tasks_pkey, its only index
    -- without a predicate (sequential and bitmap scans are off, and no
    -- partial index's predicate follows from a test of the status's text). A
    -- child that another statement changed meanwhile is re-read once its lock
    -- is free, and the counts and the status test apply to what it is then.
    -- The status is tested as text: a test of the enum would fit the index of
    -- waiting tasks, and a planner whose statistics predate the graph reads
    -- every waiting task through it for each child (measured: 9,500 rows a
    -- child, 70 ms a call, on a 10,000-task graph after the table had been
    -- vacuumed empty).
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
        FROM (SELECT * FROM targets ORDER BY id) x
        WHERE t.id = x.id AND t.status::text = 'waiting'
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
        -- Only a lane this statement's snapshot lacks: ON CONFLICT alone
        -- waits for any uncommitted change to an existing lane's row, which
        -- workers update twice a second (advance_lanes.sql).
        INSERT INTO taskqueue.claim_lanes (queue, type, priority, tenant)
        SELECT c.queue, c.type, c.priority, c.tenant
        FROM (SELECT DISTINCT queue, type, priority, tenant FROM changed
              WHERE status = 'queued') AS c
        WHERE NOT EXISTS (SELECT FROM taskqueue.claim_lanes l
                          WHERE (l.queue, l.type, l.priority, l.tenant)
                                = (c.queue, c.type, c.priority, c.tenant))
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
