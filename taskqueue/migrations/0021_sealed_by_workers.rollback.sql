-- Undo 0021_sealed_by_workers: the trigger of 0016_history_chain seals each
-- statement's events again (its function as 0016 made it). Events written
-- in between stay in the sealer's lane, which still verifies.
-- What committed since the last tick is sealed first (writers held off
-- until this commits), so nothing is left between the two ways.
LOCK TABLE taskqueue.task_events IN SHARE MODE;
SELECT FROM taskqueue.history_sealer FOR UPDATE;  -- a tick under way ends first
SELECT taskqueue.seal_history(2147483647);
CREATE TEMPORARY TABLE was_sealing ON COMMIT DROP AS
SELECT sealing FROM taskqueue.history_sealer;
DROP FUNCTION taskqueue.seal_history(integer);
DROP TABLE taskqueue.history_sealer;
ALTER TABLE taskqueue.task_events DROP COLUMN xid;
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

-- The trigger again, if the chain was on.
DO $$
BEGIN
    IF (SELECT bool_and(sealing) FROM was_sealing) THEN
        CREATE TRIGGER task_events_sealed
        AFTER INSERT ON taskqueue.task_events
        REFERENCING NEW TABLE AS new_events
        FOR EACH STATEMENT EXECUTE FUNCTION taskqueue.seal_events();
    END IF;
END
$$;

-- Retention as 0016 made it.
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
