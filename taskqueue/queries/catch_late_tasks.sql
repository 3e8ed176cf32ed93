-- write-path: worker
-- write-path-requires: 0021_sealed_by_workers
-- write-path-set: enable_seqscan = off
-- write-path-set: enable_hashjoin = off
-- write-path-set: enable_mergejoin = off
-- write-path-set: enable_bitmapscan = off
-- The catch under the raised floors (worker/lanes.py, advance_lanes.sql): a
-- floor is raised to within a short grace of the clock, so a task whose
-- producer's transaction was still open then (a Django view that enqueues,
-- then works on before it commits) may commit below its lane's floor. Such a
-- producer had a transaction id, in progress in the snapshot of this
-- worker's previous catch, taken just before its raise (the grace covers
-- the gap between a statement's start, the task's run_at, and its first
-- row written, when its transaction gets an id). Here the ones of those that
-- have ended are looked up by the events they wrote (task_events_xid_idx),
-- and a task of theirs still queued lowers its lane's floor, as the
-- producer's own statement would have. A worker thus picks it up at its
-- next pass instead of at the seldom full check (take_lane_checks.sql).
-- It reads the history (the events' xid), which the worker role may not:
-- hence the write path's function, running as the owner.
--   $1 xid8[]  transactions in progress at this worker's previous catch
--   $2 text[]  queues
--   $3 text[]  task types
-- Returns the transactions in progress now (the next catch's $1), when this
-- statement began (the raise that follows passes nothing begun after it:
-- advance_lanes.sql's $5) and how many lanes' floors it lowered.
WITH snap AS (
    SELECT pg_current_snapshot() AS s
),
running AS (
    -- In progress now: those the snapshot lists below its xmax, and every
    -- id from its xmax on that was handed out before this statement took
    -- one of its own (the snapshot's xmax is one past the newest ended
    -- transaction, not the next id: newer ones are in progress, unlisted).
    SELECT coalesce(array_agg(x), '{}') AS xids
    FROM (SELECT pg_snapshot_xip(s) AS x FROM snap
          UNION ALL
          SELECT n::text::xid8
          FROM snap, generate_series(pg_snapshot_xmax(s)::text::bigint,
                                     pg_current_xact_id()::text::bigint - 1) AS n) AS xs
),
ended AS (
    SELECT coalesce(array_agg(x), '{}') AS xids
    FROM unnest($1::xid8[]) AS x, snap
    WHERE pg_visible_in_snapshot(x, snap.s)
),
late AS (
    SELECT coalesce(array_agg(e.task_id), '{}') AS ids
    FROM taskqueue.task_events e
    WHERE e.xid = ANY ((SELECT xids FROM ended)::xid8[]) AND e.status::text = 'queued'
),
lane_rows AS (
    -- Each task by its primary key (id = ANY: a plan made while tasks was
    -- empty would otherwise drive a join from a read of all of it), and a
    -- status test on its text, which no partial index's predicate fits (see
    -- settle_children()).
    SELECT t.queue, t.type, t.priority, t.run_at, t.tenant
    FROM taskqueue.tasks t
    WHERE t.id = ANY ((SELECT ids FROM late)::uuid[])
      AND t.status::text = 'queued'
      AND t.queue = ANY ($2::text[]) AND t.type = ANY ($3::text[])
),
-- include: _open_lanes.sql
SELECT (SELECT xids FROM running) AS running, statement_timestamp() AS taken_at,
       (SELECT count(*) FROM lanes_to_lower)::int AS lowered;
