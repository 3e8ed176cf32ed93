-- Undo 0014_claim_keys: the functions of 0010_workflows as they were, and
-- no keys. Sequence links that held on failure become plain ones.

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
                  x.cause, x.parent
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
        INSERT INTO taskqueue.claim_lanes (queue, type, priority)
        SELECT DISTINCT queue, type, priority FROM changed WHERE status = 'queued'
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
              WHERE d.child_id = t.id AND p.status IN ('waiting', 'queued', 'running'))
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
                  j.doomed_by
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
        INSERT INTO taskqueue.claim_lanes (queue, type, priority)
        SELECT DISTINCT queue, type, priority FROM changed WHERE status = 'queued'
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

CREATE INDEX tasks_claim_old_idx ON taskqueue.tasks (queue, type, priority DESC, run_at, id)
    WHERE status = 'queued';
DROP INDEX taskqueue.tasks_claim_idx;
ALTER INDEX taskqueue.tasks_claim_old_idx RENAME TO tasks_claim_idx;
DELETE FROM taskqueue.claim_lanes WHERE tenant <> '';
ALTER TABLE taskqueue.claim_lanes
    DROP CONSTRAINT claim_lanes_pkey,
    ADD PRIMARY KEY (queue, type, priority);
ALTER TABLE taskqueue.claim_lanes DROP COLUMN tenant;
DROP FUNCTION IF EXISTS taskqueue.admit_keyed(text[], text[], integer[], integer[]);
DROP FUNCTION IF EXISTS taskqueue.sequence_append(text[], text[], uuid[], boolean[]);
DROP TABLE IF EXISTS taskqueue.sequences;
UPDATE taskqueue.task_dependencies SET on_parent_failure = 'run' WHERE on_parent_failure = 'hold';
ALTER TABLE taskqueue.task_dependencies
    DROP CONSTRAINT task_dependencies_on_parent_failure,
    ADD CONSTRAINT task_dependencies_on_parent_failure
        CHECK (on_parent_failure IN ('cancel', 'run'));
DROP INDEX IF EXISTS taskqueue.tasks_running_keys_idx;
ALTER TABLE taskqueue.queues DROP COLUMN IF EXISTS per_key_concurrency;
ALTER TABLE taskqueue.tasks
    DROP COLUMN IF EXISTS concurrency_key,
    DROP COLUMN IF EXISTS sequence_on_failure,
    DROP COLUMN IF EXISTS sequence_key;
