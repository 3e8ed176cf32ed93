-- Undo 0026_keys_per_tenant: sequence and concurrency keys are the
-- queue's again. A key that several tenants used keeps its newest tail (ids
-- sort by creation time), and 0014_claim_keys's functions come back.

-- Refused while two tenants have unfinished tasks of one key in a queue:
-- merged into one sequence, one of them would lose its place. Let them
-- finish (or cancel one tenant's) first.
DO $$
BEGIN
    IF EXISTS (SELECT FROM taskqueue.tasks
               WHERE sequence_key IS NOT NULL
                 AND status IN ('waiting', 'queued', 'running')
               GROUP BY queue, sequence_key
               HAVING count(DISTINCT coalesce(tenant, '')) > 1) THEN
        RAISE EXCEPTION 'tenants share a sequence key with unfinished tasks';
    END IF;
END
$$;
-- After this rollback, run the older release's `taskqueue migrate`: it
-- makes the write-path statements that call the functions below again.
DROP FUNCTION taskqueue.admit_keyed(text[], text[], text[], integer[], integer[]);
DROP FUNCTION taskqueue.sequence_append(text[], text[], text[], uuid[], boolean[]);

DELETE FROM taskqueue.sequences s
USING taskqueue.sequences n
WHERE n.queue = s.queue AND n.key = s.key AND n.tail_id > s.tail_id;
ALTER TABLE taskqueue.sequences
    DROP CONSTRAINT sequences_pkey,
    DROP COLUMN tenant,
    ADD CONSTRAINT sequences_pkey PRIMARY KEY (queue, key);

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
