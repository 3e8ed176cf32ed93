-- Tamper evidence for the history (issue 21): a hash chain over task_events.
-- Every statement that writes events appends one link to one of a few
-- lanes (a statement-level trigger; the lane is the first one no other open
-- transaction holds, so writers do not queue behind each other; a lane's
-- newest link is its head). A link
-- seals each event it covers (a digest of all its fields, id and time
-- included) and, for a task_queued or task_succeeded event, the task's
-- payload or result as written; its hash covers the previous link's hash.
-- `taskqueue verify-history` (queries/verify_history.sql) recomputes it all.
-- depends: 0015_write_path

CREATE TABLE taskqueue.history_links (
    lane       integer NOT NULL,
    seq        bigint NOT NULL,
    at         timestamptz NOT NULL,   -- its events' earliest time (their now())
    written_by text NOT NULL,          -- session_user: the login role that wrote them
    -- One 56-byte entry per event, in the order the statement wrote them:
    -- its id (8), task (16), taskqueue.event_digest() (16), and the
    -- document_seal() of the task's payload (task_queued) or result
    -- (task_succeeded) as written, else 16 zero bytes. One binary value
    -- rather than arrays: nothing to sort or box per event, and stored
    -- uncompressed (digests do not compress; trying costs time).
    entries    bytea NOT NULL,
    hash       bytea NOT NULL,         -- taskqueue.history_link_hash() over the above
    PRIMARY KEY (lane, seq)
);
ALTER TABLE taskqueue.history_links ALTER COLUMN entries SET STORAGE EXTERNAL;
CREATE INDEX history_links_at_idx ON taskqueue.history_links USING brin (at);

-- Where the chain starts: events and tasks older than this were never sealed.
CREATE TABLE taskqueue.history_genesis (
    first_event bigint NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO taskqueue.history_genesis (first_event)
SELECT coalesce(max(id), 0) + 1 FROM taskqueue.task_events;

-- Day partitions dropped by retention: their links are deleted except each
-- lane's last one before the range ends (the anchor the chain goes on from).
CREATE TABLE taskqueue.history_drops (
    starts     timestamptz NOT NULL,
    ends       timestamptz NOT NULL,
    dropped_at timestamptz NOT NULL DEFAULT now(),
    dropped_by text NOT NULL DEFAULT session_user
);

-- The youngest history retention may drop, whatever its caller asks: the
-- worker role runs retention and may not use it to erase recent history.
-- Only the owner changes it (for TASKQUEUE_RETAIN_EVENTS below a week).
CREATE TABLE taskqueue.history_policy (
    min_event_retention interval NOT NULL DEFAULT '7 days'
);
INSERT INTO taskqueue.history_policy DEFAULT VALUES;

-- The seal of the payload (task_queued) or result (task_succeeded) an
-- event's statement wrote, given by the statements that have it in hand
-- (enqueue, completion) so that seal_events() need not look the task up;
-- NULL elsewhere. Not part of the event's digest: the link holds it.
ALTER TABLE taskqueue.task_events ADD COLUMN seal bytea;

-- An event's fields, sealed: the first 16 bytes of a SHA-256 (128 bits
-- are beyond forging; half the size of the chain). Id, task and time in
-- their fixed-size binary forms (no session setting changes them), the rest
-- as the row's text, which is unambiguous (record_out quotes what needs it).
CREATE FUNCTION taskqueue.event_digest(
    id bigint, task_id uuid, at timestamptz, event_type text, status text, attempt integer,
    worker_id text, error text, detail jsonb
) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE
RETURN pg_catalog.substr(pg_catalog.sha256(
    pg_catalog.int8send(id) || pg_catalog.uuid_send(task_id) || pg_catalog.timestamptz_send(at)
    || pg_catalog.convert_to(ROW(event_type, status, attempt, worker_id, error, detail)::text,
                             'UTF8')), 1, 16);

-- A payload or result as written.
CREATE FUNCTION taskqueue.document_seal(document jsonb) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE
RETURN pg_catalog.substr(pg_catalog.sha256(pg_catalog.convert_to(
    coalesce(document::text, 'null'), 'UTF8')), 1, 16);

-- A link's entries, read back (verify_history.sql).
CREATE FUNCTION taskqueue.history_entries(entries bytea)
RETURNS TABLE (n integer, event bigint, task uuid, digest bytea, seal bytea)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT k,
           ('x' || pg_catalog.encode(pg_catalog.substr(entries, k * 56 + 1, 8), 'hex'))
               ::bit(64)::bigint,
           pg_catalog.encode(pg_catalog.substr(entries, k * 56 + 9, 16), 'hex')::uuid,
           pg_catalog.substr(entries, k * 56 + 25, 16),
           NULLIF(pg_catalog.substr(entries, k * 56 + 41, 16),
                  '\x00000000000000000000000000000000'::bytea)
    FROM pg_catalog.generate_series(0, pg_catalog.length(entries) / 56 - 1) AS k
$$;

CREATE FUNCTION taskqueue.history_link_hash(
    prev bytea, lane integer, seq bigint, at timestamptz, written_by text, entries bytea
) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE
RETURN pg_catalog.sha256(prev || pg_catalog.convert_to(ROW(
    lane, seq, (extract(epoch FROM at) * 1000000)::bigint, written_by)::text, 'UTF8')
    || entries);

-- Append one link to a lane whose advisory lock the caller holds: the
-- lane's head as this statement sees it, and the link after it.
CREATE FUNCTION taskqueue.append_history_link(p_lane integer, p_at timestamptz, p_entries bytea)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    prev_seq bigint;
    prev_hash bytea;
BEGIN
    SELECT l.seq, l.hash INTO prev_seq, prev_hash
    FROM taskqueue.history_links l WHERE l.lane = p_lane
    ORDER BY l.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        prev_seq := 0;
        prev_hash := ''::bytea;
    END IF;
    INSERT INTO taskqueue.history_links (lane, seq, at, written_by, entries, hash)
    VALUES (p_lane, prev_seq + 1, p_at, session_user, p_entries,
            taskqueue.history_link_hash(prev_hash, p_lane, prev_seq + 1, p_at, session_user,
                                        p_entries));
END
$$;
REVOKE EXECUTE ON FUNCTION taskqueue.append_history_link(integer, timestamptz, bytea) FROM PUBLIC;

-- The link of one statement's events. SECURITY DEFINER: nobody else may
-- write the chain; search_path pinned. enable_seqscan off: PL/pgSQL keeps
-- a session's plan of the payload and result lookups below, and a plan made
-- while tasks was empty (a fresh or truncated table) scans every task per
-- event for as long as the session lives (seen: 3 s per 1,000 events on
-- PostgreSQL 18, producers falling minutes behind); the primary key is the
-- only sensible way to find one task.
CREATE FUNCTION taskqueue.seal_events() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off
AS $$
DECLARE
    lanes constant integer := 16;
    lock_space constant integer := hashtext('taskqueue.history_links');
    chosen integer;
    read_committed boolean;
    link record;
BEGIN
    SELECT min(e.at) AS at,
           string_agg(
               int8send(e.id) || uuid_send(e.task_id)
               || taskqueue.event_digest(e.id, e.task_id, e.at, e.event_type, e.status::text,
                                         e.attempt, e.worker_id, e.error, e.detail)
               -- The seal the statement wrote with the event (the hot ones:
               -- enqueue and completion have the document in hand), else one
               -- index lookup per such event (a join could be planned as a
               -- scan of every task: the transition table has no statistics).
               || CASE e.event_type
                      WHEN 'task_queued' THEN coalesce(e.seal, taskqueue.document_seal(
                          (SELECT t.payload FROM taskqueue.tasks t WHERE t.id = e.task_id)))
                      WHEN 'task_succeeded' THEN coalesce(e.seal, taskqueue.document_seal(
                          (SELECT t.result FROM taskqueue.tasks t WHERE t.id = e.task_id)))
                      ELSE '\x00000000000000000000000000000000'::bytea
                  END,
               ''::bytea) AS entries
    INTO link
    FROM new_events e;
    IF link.entries IS NULL THEN
        RETURN NULL;
    END IF;
    -- The first lane, counting from this backend's, that no other open
    -- transaction holds (a transaction-scoped advisory lock: no row is
    -- updated per statement, so nothing bloats while vacuum is held back).
    -- A lane's head is the newest link this statement's snapshot sees,
    -- which in READ COMMITTED is the newest committed one. A REPEATABLE
    -- READ or SERIALIZABLE transaction (a caller's own, enqueueing) may not
    -- see a link committed after it began: its link would repeat that seq,
    -- which the primary key refuses; it tries the next lane instead (a
    -- subtransaction, paid only then), and when every lane moved on since
    -- its snapshot it fails as any such transaction does on a concurrent
    -- write, with SQLSTATE 40001, for the caller to retry.
    read_committed := current_setting('transaction_isolation') = 'read committed';
    FOR attempt IN 0 .. lanes - 1 LOOP
        chosen := (pg_backend_pid() + attempt) % lanes;
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(lock_space, chosen);
        IF read_committed THEN
            PERFORM taskqueue.append_history_link(chosen, link.at, link.entries);
            RETURN NULL;
        END IF;
        BEGIN
            PERFORM taskqueue.append_history_link(chosen, link.at, link.entries);
            RETURN NULL;
        EXCEPTION WHEN unique_violation OR serialization_failure THEN
            NULL;  -- this lane moved on after the snapshot: the next one
        END;
    END LOOP;
    IF NOT read_committed THEN
        RAISE EXCEPTION 'could not serialize access: every history lane was written after this transaction began'
            USING ERRCODE = 'serialization_failure',
                  HINT = 'Retry the transaction.';
    END IF;
    -- All held by others: wait for this backend's own.
    chosen := pg_backend_pid() % lanes;
    PERFORM pg_advisory_xact_lock(lock_space, chosen);
    PERFORM taskqueue.append_history_link(chosen, link.at, link.entries);
    RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION taskqueue.seal_events() FROM PUBLIC;

-- Sealing starts now (`taskqueue history-chain off` stops it, `on` starts
-- it again: queries/history_chain_off.sql, history_chain_on.sql).
CREATE TRIGGER task_events_sealed
AFTER INSERT ON taskqueue.task_events
REFERENCING NEW TABLE AS new_events
FOR EACH STATEMENT EXECUTE FUNCTION taskqueue.seal_events();

-- Retention keeps verifying: drop_event_partitions() as in 0008 (but never
-- younger than history_policy allows), and then the
-- links of the dropped days (and of any day before) go too, but for each
-- lane's last one before the end of the range: the anchor the rest of the
-- chain goes on from.
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
        WHERE l.at < old.ends
          AND l.seq < (SELECT max(k.seq) FROM taskqueue.history_links k
                       WHERE k.lane = l.lane AND k.at < old.ends);
        partition_name := old.name;
        starts := old.starts;
        ends := old.ends;
        estimated_rows := old.estimated;
        RETURN NEXT;
    END LOOP;
END
$$;
