-- Built-in retention and counters that keep the overviews cheap:
--   queue_retention  per-queue overrides of how long finished tasks are kept
--                    (a queue without a row keeps TASKQUEUE_RETAIN_*); not a
--                    column of queues on purpose: a row there sends a queue's
--                    claims down the governed path
--   queue_counts     what finished, per queue, as append-only deltas: every
--                    finishing statement inserts one row per queue it touched,
--                    the pruner folds a queue's rows into one now and then, so
--                    no row is updated by every completion
--   prune_marks      where each walk over succeeded tasks has got to
--   prune_tasks()    one bounded batch of pruning, with its task_deleted events
-- depends: 0008_partitioned_events

CREATE TABLE taskqueue.queue_retention (
    queue            text PRIMARY KEY,
    retain_succeeded interval,  -- NULL: the worker's TASKQUEUE_RETAIN_SUCCEEDED
    retain_failed    interval,
    retain_cancelled interval,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT queue_retention_positive CHECK (
        retain_succeeded > interval '0' AND retain_failed > interval '0'
        AND retain_cancelled > interval '0')
);

-- Sums over a queue's rows are its counts. succeeded, failed and cancelled
-- count tasks whose latest finish was that (a manual retry takes its task
-- back out); pruning and deleting a task leave them alone. retries sums the
-- attempts beyond the first of those tasks, tasks_with_retries counts the
-- ones that had any.
CREATE TABLE taskqueue.queue_counts (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue              text NOT NULL,
    succeeded          bigint NOT NULL DEFAULT 0,
    failed             bigint NOT NULL DEFAULT 0,
    cancelled          bigint NOT NULL DEFAULT 0,
    retries            bigint NOT NULL DEFAULT 0,
    tasks_with_retries bigint NOT NULL DEFAULT 0
) WITH (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000
);

-- Counts of what finished before counting began, read once here.
INSERT INTO taskqueue.queue_counts (queue, succeeded, failed, cancelled, retries,
                                    tasks_with_retries)
SELECT queue,
       count(*) FILTER (WHERE status = 'succeeded'),
       count(*) FILTER (WHERE status = 'failed'),
       count(*) FILTER (WHERE status = 'cancelled'),
       coalesce(sum(greatest(attempts - 1, 0)), 0),
       count(*) FILTER (WHERE attempts > 1)
FROM taskqueue.tasks
WHERE status IN ('succeeded', 'failed', 'cancelled')
GROUP BY queue;

-- A walk over succeeded tasks goes in primary-key order (ids are UUIDv7,
-- so "created before" is an id range) and goes on from its mark on its next
-- batch, instead of reading again every row still kept at the head. There is
-- one walk per succeeded retention in use (the default and each queue's own),
-- named by its length in seconds. sweep_started_at: when the walk last
-- started from the lowest id.
CREATE TABLE taskqueue.prune_marks (
    walk             text PRIMARY KEY,
    after            uuid NOT NULL,
    sweep_started_at timestamptz NOT NULL DEFAULT now()
);

-- Failed and cancelled tasks are pruned oldest first through this index.
-- Being partial it holds only those rows: a success never writes to it.
CREATE INDEX tasks_unhappy_finished_idx ON taskqueue.tasks (status, completed_at)
    WHERE status IN ('failed', 'cancelled');

-- One batch of pruning, as one statement: finished tasks past their queue's
-- retention (or the default given) are deleted, each with a task_deleted
-- event (detail {"reason": "retention"}); their other events stay. Every row
-- is taken FOR UPDATE SKIP LOCKED, so two pruners never delete the same row,
-- and only finished rows are read or locked: claims never wait on a pruner.
-- Succeeded tasks kept for p_walk (by default or by their queue's own
-- setting) are found by walking ids from that walk's mark up to the id of
-- the cut-off less p_lag (a task finishes some time after it is made); the
-- walk starts again from the lowest id once it has caught up and its last
-- start is p_sweep old, which picks up tasks that finished long after they
-- were made. One pruner walks each at a time (the mark's row lock, skipped by
-- the others). Failed and cancelled tasks are read oldest finish first from
-- tasks_unhappy_finished_idx.
-- SECURITY DEFINER: the worker role may not delete tasks; this function is
-- the one way it can, and only finished tasks past retention.
CREATE FUNCTION taskqueue.prune_tasks(
    p_now timestamptz,          -- NULL: now() (tests pin it)
    p_limit integer,            -- rows at most per part (walked, failed, cancelled)
    p_walk interval,            -- the succeeded retention this batch walks for
    p_succeeded interval,       -- the defaults, for queues without an override
    p_failed interval,
    p_cancelled interval,
    p_lag interval,
    p_sweep interval,
    p_worker text               -- the pruning worker, named in the events
) RETURNS TABLE (deleted bigint, walked bigint, failed bigint, cancelled bigint)
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
INSERT INTO taskqueue.prune_marks (walk, after, sweep_started_at)
VALUES ('succeeded/' || extract(epoch FROM p_walk)::text, '00000000-0000-0000-0000-000000000000',
        coalesce(p_now, now()))
ON CONFLICT (walk) DO NOTHING;

WITH clock AS (
    SELECT coalesce(p_now, now()) AS now
),
shortest AS (
    SELECT least(p_failed, min(r.retain_failed)) AS failed,
           least(p_cancelled, min(r.retain_cancelled)) AS cancelled
    FROM taskqueue.queue_retention r
),
mark AS MATERIALIZED (
    SELECT m.after, m.sweep_started_at
    FROM taskqueue.prune_marks m
    WHERE m.walk = 'succeeded/' || extract(epoch FROM p_walk)::text
    FOR UPDATE SKIP LOCKED
),
bound AS (
    -- The lowest UUIDv7 of the cut-off's millisecond: every id below it was
    -- made before the cut-off.
    SELECT (lpad(to_hex(floor(extract(epoch FROM c.now - p_walk - p_lag) * 1000)::bigint),
                 12, '0') || '00000000000000000000')::uuid AS id
    FROM clock c
),
walk AS MATERIALIZED (
    SELECT t.id
    FROM taskqueue.tasks t
    WHERE t.id > (SELECT after FROM mark) AND t.id < (SELECT id FROM bound)
    ORDER BY t.id
    LIMIT p_limit
),
doomed_succeeded AS MATERIALIZED (
    SELECT t.id
    FROM taskqueue.tasks t
    LEFT JOIN taskqueue.queue_retention r ON r.queue = t.queue
    WHERE t.id IN (SELECT id FROM walk)
      AND t.status = 'succeeded'
      AND coalesce(r.retain_succeeded, p_succeeded) = p_walk
      AND t.completed_at < (SELECT now FROM clock) - p_walk
    FOR UPDATE OF t SKIP LOCKED
),
doomed_failed AS MATERIALIZED (
    SELECT t.id
    FROM taskqueue.tasks t
    LEFT JOIN taskqueue.queue_retention r ON r.queue = t.queue
    WHERE t.status = 'failed'
      AND t.completed_at < (SELECT c.now - s.failed FROM clock c, shortest s)
      AND t.completed_at < (SELECT now FROM clock) - coalesce(r.retain_failed, p_failed)
    ORDER BY t.completed_at
    LIMIT p_limit
    FOR UPDATE OF t SKIP LOCKED
),
doomed_cancelled AS MATERIALIZED (
    SELECT t.id
    FROM taskqueue.tasks t
    LEFT JOIN taskqueue.queue_retention r ON r.queue = t.queue
    WHERE t.status = 'cancelled'
      AND t.completed_at < (SELECT c.now - s.cancelled FROM clock c, shortest s)
      AND t.completed_at < (SELECT now FROM clock) - coalesce(r.retain_cancelled, p_cancelled)
    ORDER BY t.completed_at
    LIMIT p_limit
    FOR UPDATE OF t SKIP LOCKED
),
gone AS (
    DELETE FROM taskqueue.tasks t
    WHERE t.id IN (SELECT id FROM doomed_succeeded
                   UNION ALL SELECT id FROM doomed_failed
                   UNION ALL SELECT id FROM doomed_cancelled)
      AND t.status IN ('succeeded', 'failed', 'cancelled')
    RETURNING t.id, t.status, t.attempts
),
gone_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, worker_id, detail)
    SELECT id, 'task_deleted', status, attempts, p_worker, '{"reason": "retention"}'::jsonb
    FROM gone
),
walked AS (
    SELECT count(*) AS n, (SELECT id FROM walk ORDER BY id DESC LIMIT 1) AS last FROM walk
),
moved AS (
    UPDATE taskqueue.prune_marks m
    SET after = CASE WHEN w.n < p_limit AND m.sweep_started_at < c.now - p_sweep
                     THEN '00000000-0000-0000-0000-000000000000'::uuid
                     ELSE coalesce(w.last, m.after) END,
        sweep_started_at = CASE WHEN w.n < p_limit AND m.sweep_started_at < c.now - p_sweep
                                THEN c.now ELSE m.sweep_started_at END
    FROM walked w, clock c
    WHERE m.walk = 'succeeded/' || extract(epoch FROM p_walk)::text AND EXISTS (SELECT FROM mark)
)
SELECT (SELECT count(*) FROM gone),
       (SELECT n FROM walked),
       (SELECT count(*) FROM doomed_failed),
       (SELECT count(*) FROM doomed_cancelled);
$$;

REVOKE ALL ON FUNCTION taskqueue.prune_tasks(timestamptz, integer, interval, interval, interval,
                                              interval, interval, interval, text) FROM PUBLIC;
