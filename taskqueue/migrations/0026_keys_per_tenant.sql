-- Sequence and concurrency keys belong to a tenant: tasks of two tenants
-- with the same sequence_key in a queue form two sequences, and
-- per_key_concurrency counts a key's running tasks per tenant. Before, a
-- key was the queue's: one tenant's blocking failure held another tenant's
-- sequence of the same name, and one tenant's running tasks used up another
-- tenant's slots of the key. Tasks of no tenant are the tenant ''.
--   sequences.tenant          part of the key
--   sequence_append()         takes the tenants beside the queues and keys
--   admit_keyed()             likewise: a lock and a count per (queue, tenant, key)
-- depends: 0025_children_lanes_without_waiting

ALTER TABLE taskqueue.sequences ADD COLUMN tenant text NOT NULL DEFAULT '';
-- Every existing tail was kept by the queue-wide rule: it stays with the
-- tenant of its task ('' when that task is gone: it had ended) ...
UPDATE taskqueue.sequences s SET tenant = t.tenant
FROM taskqueue.tasks t WHERE t.id = s.tail_id AND t.tenant IS NOT NULL;
ALTER TABLE taskqueue.sequences
    DROP CONSTRAINT sequences_pkey,
    ADD CONSTRAINT sequences_pkey PRIMARY KEY (queue, tenant, key);
-- ... and every other tenant that has tasks of the key gets its own tail,
-- its newest task of the key (ids sort by creation time), so its next task
-- still waits for the ones it queued before this migration.
INSERT INTO taskqueue.sequences (queue, tenant, key, tail_id, tail_blocks)
SELECT DISTINCT ON (t.queue, coalesce(t.tenant, ''), t.sequence_key)
       t.queue, coalesce(t.tenant, ''), t.sequence_key, t.id,
       coalesce(t.sequence_on_failure = 'block', false)
FROM taskqueue.tasks t
WHERE t.sequence_key IS NOT NULL
ORDER BY t.queue, coalesce(t.tenant, ''), t.sequence_key, t.id DESC
ON CONFLICT ON CONSTRAINT sequences_pkey DO NOTHING;

DROP FUNCTION taskqueue.sequence_append(text[], text[], uuid[], boolean[]);

-- Append p_last[i] (blocking when p_blocks[i]) to sequence (p_queues[i],
-- p_tenants[i], p_keys[i]) for each distinct key, and return the tails they
-- had before (none for a new sequence). New keys are inserted first, then
-- existing ones locked, each in (queue, tenant, key) order, so concurrent
-- producers never deadlock; each step reads a fresh snapshot (VOLATILE), so
-- a tail committed while this waited for its lock is the one returned.
CREATE FUNCTION taskqueue.sequence_append(p_queues text[], p_tenants text[], p_keys text[],
                                          p_last uuid[], p_blocks boolean[])
RETURNS TABLE (queue text, tenant text, key text, tail_id uuid, tail_blocks boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    fresh_q text[];
    fresh_t text[];
    fresh_k text[];
BEGIN
    WITH made AS (
        INSERT INTO taskqueue.sequences AS s (queue, tenant, key, tail_id, tail_blocks)
        SELECT w.queue, w.tenant, w.key, w.last, w.blocks
        FROM unnest(p_queues, p_tenants, p_keys, p_last, p_blocks)
             AS w(queue, tenant, key, last, blocks)
        ORDER BY w.queue, w.tenant, w.key
        ON CONFLICT ON CONSTRAINT sequences_pkey DO NOTHING
        RETURNING s.queue, s.tenant, s.key
    )
    SELECT coalesce(array_agg(m.queue), '{}'), coalesce(array_agg(m.tenant), '{}'),
           coalesce(array_agg(m.key), '{}')
    INTO fresh_q, fresh_t, fresh_k FROM made m;
    RETURN QUERY
    WITH RECURSIVE wanted AS (
        SELECT w.queue, w.tenant, w.key, w.last, w.blocks
        FROM unnest(p_queues, p_tenants, p_keys, p_last, p_blocks)
             AS w(queue, tenant, key, last, blocks)
        WHERE (w.queue, w.tenant, w.key) NOT IN (SELECT * FROM unnest(fresh_q, fresh_t, fresh_k))
    ),
    old AS MATERIALIZED (
        SELECT s.queue, s.tenant, s.key, s.tail_id, s.tail_blocks
        FROM taskqueue.sequences s
        JOIN wanted w ON (w.queue, w.tenant, w.key) = (s.queue, s.tenant, s.key)
        ORDER BY s.queue, s.tenant, s.key
        FOR UPDATE OF s
    ),
    walk (queue, tenant, key, tail_id, tail_blocks, depth) AS (
        -- A tail cancelled or expired before it ran stands for its own
        -- predecessor (see settle_children): walk back past such tails.
        SELECT o.queue, o.tenant, o.key, o.tail_id, o.tail_blocks, 0 FROM old o
        UNION ALL
        SELECT w.queue, w.tenant, w.key, d.parent_id, d.on_parent_failure = 'hold', w.depth + 1
        FROM walk w
        JOIN taskqueue.tasks t ON t.id = w.tail_id AND t.status IN ('cancelled', 'expired')
        JOIN taskqueue.task_dependencies d ON d.child_id = t.id
        JOIN taskqueue.tasks q ON q.id = d.parent_id
        WHERE q.queue = w.queue AND coalesce(q.tenant, '') = w.tenant
          AND q.sequence_key = w.key AND w.depth < 10000
    ),
    resolved AS (
        SELECT DISTINCT ON (queue, tenant, key) queue, tenant, key, tail_id, tail_blocks
        FROM walk ORDER BY queue, tenant, key, depth DESC
    ),
    moved AS (
        UPDATE taskqueue.sequences s
        SET tail_id = w.last, tail_blocks = w.blocks
        FROM wanted w, old o
        WHERE (s.queue, s.tenant, s.key) = (w.queue, w.tenant, w.key)
          AND (o.queue, o.tenant, o.key) = (w.queue, w.tenant, w.key)
    )
    SELECT r.queue, r.tenant, r.key, r.tail_id, r.tail_blocks FROM resolved r;
END
$$;

REVOKE ALL ON FUNCTION taskqueue.sequence_append(text[], text[], text[], uuid[], boolean[])
    FROM PUBLIC;

DROP FUNCTION taskqueue.admit_keyed(text[], text[], integer[], integer[]);

-- How many of p_wanted[i] more tasks of key p_keys[i] of tenant
-- p_tenants[i] in queue p_queues[i] may start now: p_limits[i] minus its
-- running tasks. Called inside the claim (claim_governed_tasks.sql), as
-- 0014_claim_keys's was: each key's transaction-level advisory lock first
-- (in one order, so two claims never deadlock), then a count with a fresh
-- snapshot, which includes every claim of the key that committed before the
-- lock was granted; held until the claim commits.
CREATE FUNCTION taskqueue.admit_keyed(p_queues text[], p_tenants text[], p_keys text[],
                                      p_wanted integer[], p_limits integer[])
RETURNS TABLE (queue text, tenant text, key text, admitted integer)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM pg_advisory_xact_lock(s.h)
    FROM (SELECT DISTINCT hashtextextended(w.queue || chr(31) || w.tenant || chr(31) || w.key,
                                           20) AS h
          FROM unnest(p_queues, p_tenants, p_keys) AS w(queue, tenant, key)
          ORDER BY 1) s;
    -- A count per key (an index probe each on the queue and key, the
    -- tenant read from those rows), not a scan of every running keyed task.
    RETURN QUERY
    SELECT w.queue, w.tenant, w.key,
           least(w.wanted, greatest(0, w.lim - (
               SELECT count(*)::int FROM taskqueue.tasks t
               WHERE t.status = 'running' AND t.queue = w.queue
                 AND t.concurrency_key = w.key AND coalesce(t.tenant, '') = w.tenant)))::int
    FROM unnest(p_queues, p_tenants, p_keys, p_wanted, p_limits)
         AS w(queue, tenant, key, wanted, lim);
END
$$;
