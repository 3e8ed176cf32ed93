-- The history chain (0016_history_chain) is written by workers, after the
-- fact, instead of by a trigger on every statement that writes events. The
-- trigger cost each producer's statement about 77 µs (picking and locking a
-- lane, reading its head, inserting the link) and each event about 2 µs,
-- on every enqueue, claim and completion; a single enqueue lost ~13 % to it.
--
-- Now each event carries the id of the transaction that wrote it (xid, a
-- column default nobody can pass: the deploy roles write events only through
-- the write path), and taskqueue.seal_history() links, in one link, the
-- events that became visible between two snapshots, as PgQ's ticks do: those
-- of the transactions the previous snapshot listed as in progress, and those
-- of transactions that began between the two snapshots' bounds, visible in
-- the new one. No event is missed nor sealed twice, whatever the commit
-- order, and a transaction held open for hours (a held horizon) costs one
-- index probe per tick, not a scan of what was written since it began.
-- Workers call it every TASKQUEUE_SEAL_INTERVAL (1 s by default); one
-- at a time (the sealer row is locked, SKIP LOCKED: the others pass);
-- verify-history calls it first. What this gives up: an event is sealed
-- about a second after its commit instead of at it, and a payload is sealed
-- as the task holds it then (results are sealed by the completion that
-- writes them, in task_events.seal).
-- Links written by the trigger stay and verify as they are.
-- depends: 0020_rated_lane_notice

DROP TRIGGER IF EXISTS task_events_sealed ON taskqueue.task_events;
DROP FUNCTION taskqueue.seal_events();

-- Added without a default (no rewrite of the history); rows written from
-- here on get one. Rows before it were sealed by the trigger.
ALTER TABLE taskqueue.task_events ADD COLUMN xid xid8;
ALTER TABLE taskqueue.task_events ALTER COLUMN xid SET DEFAULT pg_catalog.pg_current_xact_id();
CREATE INDEX task_events_xid_idx ON taskqueue.task_events (xid) WHERE xid IS NOT NULL;

-- Where sealing stands: the snapshot up to which every event is sealed
-- (events whose transaction it shows as committed), and whether workers
-- seal at all (`taskqueue history-chain off|on`). One row; each tick that
-- sealed something moves it.
CREATE TABLE taskqueue.history_sealer (
    one       boolean PRIMARY KEY DEFAULT true CHECK (one),
    snapshot  pg_snapshot NOT NULL,
    sealing   boolean NOT NULL DEFAULT true,
    sealed_at timestamptz NOT NULL DEFAULT now()
);
-- Nothing that writes events runs now (ADD COLUMN waited for every writer
-- and holds them off until this commits): every event from here on has an
-- xid this snapshot does not show as committed.
INSERT INTO taskqueue.history_sealer (snapshot) VALUES (pg_catalog.pg_current_snapshot());

-- The links a tick writes live in the sealer's own lane, past the trigger's
-- 0-15; it holds the lane's head, so nothing else ever writes it. One link
-- per UTC day of its events' times, so that a link never spans two of the
-- history's day partitions (retention keeps a dropped range's last link as
-- its anchor, and looks for none of that link's events).
-- Returns how many events it sealed: about p_max at most (a transaction's
-- events are never split, and those of transactions that were in progress
-- at the last tick come on top).
CREATE FUNCTION taskqueue.seal_history(p_max integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- A session keeps its plans: one made while task_events or tasks was empty
-- must not become a scan of either (see 0016's seal_events).
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    sealer_lane constant integer := 16;
    prev pg_snapshot;
    cur pg_snapshot;
    cut xid8;
    link record;
    head_seq bigint;
    head_hash bytea;
    sealed integer := 0;
BEGIN
    -- A snapshot never lists its own transaction as in progress: a caller
    -- that wrote events and then sealed would seal them uncommitted and
    -- pass over what it writes next.
    IF EXISTS (SELECT FROM taskqueue.task_events e
               WHERE e.xid = pg_current_xact_id_if_assigned()) THEN
        RAISE EXCEPTION 'seal_history() must run in a transaction that wrote no events';
    END IF;
    SELECT s.snapshot INTO prev
    FROM taskqueue.history_sealer s WHERE s.sealing
    FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN 0;  -- off, or another worker is sealing
    END IF;
    cur := pg_current_snapshot();
    -- Past p_max new events, cut the range of new transactions after the
    -- one that event belongs to (whole: a tick always moves on) and seal
    -- those before the cut: a snapshot ending there shows exactly the
    -- transactions below it that cur shows as committed.
    SELECT e.xid INTO cut
    FROM taskqueue.task_events e
    WHERE e.xid >= pg_snapshot_xmax(prev) AND e.xid < pg_snapshot_xmax(cur)
    ORDER BY e.xid
    OFFSET p_max LIMIT 1;
    IF cut IS NOT NULL THEN
        SELECT e.xid INTO cut
        FROM taskqueue.task_events e
        WHERE e.xid > cut AND e.xid < pg_snapshot_xmax(cur)
        ORDER BY e.xid
        LIMIT 1;
    END IF;
    IF cut IS NOT NULL THEN
        cur := (least(pg_snapshot_xmin(cur), cut)::text || ':' || cut::text || ':'
                || coalesce((SELECT string_agg(x::text, ',' ORDER BY x)
                             FROM pg_snapshot_xip(cur) AS x WHERE x < cut), ''))::pg_snapshot;
    END IF;
    SELECT l.seq, l.hash INTO head_seq, head_hash
    FROM taskqueue.history_links l WHERE l.lane = sealer_lane
    ORDER BY l.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        head_seq := 0;
        head_hash := ''::bytea;
    END IF;
    FOR link IN
        -- The link's time is its newest event's (within one day, all of
        -- them): verify-history --since T then reads every link holding an
        -- event from T on.
        SELECT max(e.at) AS at,
               count(*)::integer AS n,
               string_agg(
                   int8send(e.id) || uuid_send(e.task_id)
                   || taskqueue.event_digest(e.id, e.task_id, e.at, e.event_type,
                                             e.status::text, e.attempt, e.worker_id, e.error,
                                             e.detail)
                   -- The seal the statement wrote with the event (a
                   -- completion's result), else the document the task
                   -- holds, by its primary key.
                   || CASE e.event_type
                          WHEN 'task_queued' THEN coalesce(e.seal, taskqueue.document_seal(
                              (SELECT t.payload FROM taskqueue.tasks t WHERE t.id = e.task_id)))
                          WHEN 'task_succeeded' THEN coalesce(e.seal, taskqueue.document_seal(
                              (SELECT t.result FROM taskqueue.tasks t WHERE t.id = e.task_id)))
                          ELSE '\x00000000000000000000000000000000'::bytea
                      END,
                   ''::bytea ORDER BY e.id) AS entries
        FROM taskqueue.task_events e
        WHERE (e.xid = ANY (ARRAY(SELECT pg_snapshot_xip(prev)))
               OR (e.xid >= pg_snapshot_xmax(prev) AND e.xid < pg_snapshot_xmax(cur)))
          AND pg_visible_in_snapshot(e.xid, cur)
        GROUP BY (e.at AT TIME ZONE 'UTC')::date
        ORDER BY (e.at AT TIME ZONE 'UTC')::date
    LOOP
        head_hash := taskqueue.history_link_hash(head_hash, sealer_lane, head_seq + 1, link.at,
                                                 session_user, link.entries);
        head_seq := head_seq + 1;
        INSERT INTO taskqueue.history_links (lane, seq, at, written_by, entries, hash)
        VALUES (sealer_lane, head_seq, link.at, session_user, link.entries, head_hash);
        sealed := sealed + link.n;
    END LOOP;
    IF sealed > 0 THEN
        -- Nothing sealed, nothing to move: an idle install leaves no dead
        -- row per tick.
        UPDATE taskqueue.history_sealer SET snapshot = cur, sealed_at = now();
    END IF;
    RETURN sealed;
END
$$;
REVOKE EXECUTE ON FUNCTION taskqueue.seal_history(integer) FROM PUBLIC;

-- Retention keeps each lane's anchor where the chain goes on. A lane's
-- link times need not rise with its seq (a link's time is its events',
-- and a transaction that began before midnight may commit after a tick
-- sealed the next day): drop_event_partitions() now deletes only a lane's
-- leading run of links older than the dropped range and keeps the last of
-- that run as the anchor; older links further on stay (verify-history
-- checks their hashes and does not look for their events).
CREATE OR REPLACE FUNCTION taskqueue.drop_event_partitions(older_than timestamptz)
RETURNS TABLE (partition_name text, starts timestamptz, ends timestamptz, estimated_rows bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
SET lock_timeout = '5s'
AS $$
DECLARE
    old record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('taskqueue.task_events partitions', 0));
    FOR old IN
        SELECT p.partition_name AS name, p.starts, p.ends, p.estimated_rows AS estimated
        FROM taskqueue.event_partitions() p
        WHERE p.ends <= least(older_than, now() - (SELECT coalesce(max(min_event_retention),
                                                                   interval '7 days')
                                                    FROM taskqueue.history_policy))
        ORDER BY p.starts
    LOOP
        EXECUTE format('ALTER TABLE taskqueue.task_events DETACH PARTITION taskqueue.%I', old.name);
        EXECUTE format('DROP TABLE taskqueue.%I', old.name);
        INSERT INTO taskqueue.history_drops (starts, ends) VALUES (old.starts, old.ends);
        DELETE FROM taskqueue.history_links l
        USING (SELECT k.lane,
                      coalesce(min(k.seq) FILTER (WHERE k.at >= old.ends), max(k.seq) + 1) - 1
                          AS anchor
               FROM taskqueue.history_links k GROUP BY k.lane) a
        WHERE l.lane = a.lane AND l.seq < a.anchor;
        partition_name := old.name;
        starts := old.starts;
        ends := old.ends;
        estimated_rows := old.estimated;
        RETURN NEXT;
    END LOOP;
END
$$;
