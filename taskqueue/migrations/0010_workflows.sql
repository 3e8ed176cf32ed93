-- Dependencies and workflows: a task may wait for other tasks (its parents).
--   tasks.waiting_on      how many of a waiting task's parents are not finished
--   tasks.parents         how many parents the task has (0: the claim skips
--                         reading their results for it)
--   tasks.children        how many dependencies name the task as a parent; 0
--                         (every task without dependents) lets the finishing
--                         statements skip the release entirely
--   task_dependencies     one row per (parent, child), with what the child
--                         does when that parent fails or is cancelled
--   workflows             a named graph inserted in one transaction
--   settle_children()     called by every statement that finishes a parent
--   cascade_ended()       what follows the end of the tasks those cancel
--   reconcile_waiting()   the safety net a worker loop calls now and then
-- depends: 0010_waiting

CREATE TABLE taskqueue.workflows (
    id         uuid PRIMARY KEY,  -- UUIDv7 made by the client
    name       text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT statement_timestamp()
);

-- Adding columns with constant defaults rewrites nothing.
ALTER TABLE taskqueue.tasks
    ADD COLUMN waiting_on integer NOT NULL DEFAULT 0,
    ADD COLUMN parents integer NOT NULL DEFAULT 0,
    ADD COLUMN children integer NOT NULL DEFAULT 0,
    ADD COLUMN workflow_id uuid,
    ADD COLUMN workflow_ref text,
    ADD CONSTRAINT tasks_waiting_on_not_negative CHECK (waiting_on >= 0);

-- No foreign keys, like task_events: a key would lock the hot parent row for
-- every insert of a dependent, and either side may be deleted (pruned) while
-- the other is kept. A dependency whose parent is gone counts as done (only
-- finished tasks are ever deleted); one whose child is gone is swept by the
-- reconciler (taskqueue.worker.dependencies).
CREATE TABLE taskqueue.task_dependencies (
    parent_id         uuid NOT NULL,
    child_id          uuid NOT NULL,
    on_parent_failure text NOT NULL DEFAULT 'cancel',
    PRIMARY KEY (parent_id, child_id),
    CONSTRAINT task_dependencies_on_parent_failure CHECK (on_parent_failure IN ('cancel', 'run')),
    CONSTRAINT task_dependencies_not_self CHECK (parent_id <> child_id)
);
CREATE INDEX task_dependencies_child_idx ON taskqueue.task_dependencies (child_id);

CREATE INDEX tasks_workflow_idx ON taskqueue.tasks (workflow_id) WHERE workflow_id IS NOT NULL;
-- The reconciler and the waiting counts read only waiting rows.
CREATE INDEX tasks_waiting_idx ON taskqueue.tasks (queue) WHERE status = 'waiting';

-- What follows the end of tasks that settle_children() or reconcile_waiting()
-- cancelled: no statement of the application's ended them, so no query
-- fragment can follow. Their result waiters hear their ids on taskqueue_done,
-- one NOTIFY per 200 ids, as _ended_notices.sql does; 0011_expiry_callbacks
-- replaces this with a version that also queues their callbacks.
-- PERFORM runs the query to its end (a LANGUAGE sql function would stop at
-- the first row, one NOTIFY).
CREATE FUNCTION taskqueue.cascade_ended(p_ids uuid[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_notify('taskqueue_done', string_agg(id::text, ','))
    FROM (SELECT id, (row_number() OVER () - 1) / 200 AS chunk
          FROM unnest(p_ids) AS u(id)) d
    GROUP BY chunk;
END
$$;

REVOKE ALL ON FUNCTION taskqueue.cascade_ended(uuid[]) FROM PUBLIC;

-- Settle the dependents of parents that have just finished for good, inside
-- the statement that finished them (complete_tasks, rescue_expired,
-- cancel_task(s), expire_tasks): with p_ok[i] true the parent succeeded,
-- else it failed, was cancelled or expired (it never ran: for its
-- dependents an expired parent is a cancelled one).
--   * Waiting children reached through an 'cancel' dependency of a failed
--     parent are cancelled, and so, transitively, are their own waiting
--     dependents through 'cancel' dependencies; each task_cancelled event
--     names the parent that caused it.
--   * Every other dependency on a parent that finished (or on a task
--     cancelled above) counts down its child's waiting_on; a child that
--     reaches 0 becomes queued, due now at the earliest, with a task_ready
--     event naming the parent that released it.
-- Children are locked in id order (concurrent settlements of siblings'
-- children never deadlock) and counted down with `waiting_on - n` on the
-- locked row, so concurrent completions of sibling parents each subtract
-- their own share. VOLATILE on purpose: each statement here reads a fresh
-- snapshot, so a dependent inserted by a transaction that committed while
-- the caller waited for its parent's row lock is seen and counted down.
-- SECURITY DEFINER: callers may not otherwise move another task, and the
-- row-level security of the API role would hide waiting rows from it.
-- The claim lane is opened here like _open_lanes.sql does (a migration
-- cannot include a query fragment): released tasks are due no earlier than
-- now(), which no lane floor passes, so a lane only has to exist.
-- Returns how many children changed state; one NOTIFY for the call. The
-- children cancelled here end like any task (cascade_ended()).
CREATE FUNCTION taskqueue.settle_children(p_parents uuid[], p_ok boolean[], p_by text)
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

REVOKE ALL ON FUNCTION taskqueue.settle_children(uuid[], boolean[], text) FROM PUBLIC;

-- The safety net, never the mechanism: waiting tasks none of whose parents
-- is unfinished (a settlement that was missed: the rare race of a retry by
-- hand with a parent's finish, say) are settled from what their parents'
-- rows say now: cancelled when a failed, cancelled or expired parent asked for it
-- (and their dependents settled in turn), else queued. Each event's detail
-- says {"by": "reconciler"}. At most p_limit tasks a call, locked with SKIP
-- LOCKED. SECURITY DEFINER for the same reasons as settle_children(), and
-- because a worker's own role may not cancel tasks.
CREATE FUNCTION taskqueue.reconcile_waiting(p_limit integer, p_by text)
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

REVOKE ALL ON FUNCTION taskqueue.reconcile_waiting(integer, text) FROM PUBLIC;

-- Existing parents of tasks being inserted (depends_on by id): locked in id
-- order, their children count raised by p_counts[i], and their status as it
-- is once locked (a parent that does not exist is left out). Called by
-- enqueue_dependent_tasks.sql. SECURITY DEFINER: the API role may not
-- otherwise write to a running task's row (row-level security), and this
-- writes only the count.
CREATE FUNCTION taskqueue.lock_parents(p_parents uuid[], p_counts integer[])
RETURNS TABLE (id uuid, status taskqueue.task_status)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH wanted AS (
        SELECT * FROM unnest(p_parents, p_counts) AS w(id, n)
    ),
    locked AS MATERIALIZED (
        SELECT t.id
        FROM taskqueue.tasks t
        WHERE t.id IN (SELECT w.id FROM wanted w)
        ORDER BY t.id
        FOR UPDATE
    )
    UPDATE taskqueue.tasks t
    SET children = t.children + w.n
    FROM wanted w
    JOIN locked l ON l.id = w.id
    WHERE t.id = w.id
    RETURNING t.id, t.status;
$$;

REVOKE ALL ON FUNCTION taskqueue.lock_parents(uuid[], integer[]) FROM PUBLIC;
