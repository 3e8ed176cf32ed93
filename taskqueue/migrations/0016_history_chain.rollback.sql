-- Undo 0016_history_chain: drop_event_partitions() goes back to 0008's.
DROP TRIGGER IF EXISTS task_events_sealed ON taskqueue.task_events;
DROP FUNCTION taskqueue.seal_events();
DROP FUNCTION taskqueue.append_history_link(integer, timestamptz, bytea);
DROP FUNCTION taskqueue.history_link_hash(bytea, integer, bigint, timestamptz, text, bytea);
DROP FUNCTION taskqueue.history_entries(bytea);
DROP FUNCTION taskqueue.document_seal(jsonb);
DROP FUNCTION taskqueue.event_digest(bigint, uuid, timestamptz, text, text, integer, text, text,
                                     jsonb);
ALTER TABLE taskqueue.task_events DROP COLUMN seal;
DROP TABLE taskqueue.history_links, taskqueue.history_genesis,
           taskqueue.history_drops, taskqueue.history_policy;
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
        WHERE p.ends <= least(older_than, now())
        ORDER BY p.starts
    LOOP
        EXECUTE format('ALTER TABLE taskqueue.task_events DETACH PARTITION taskqueue.%I', old.name);
        EXECUTE format('DROP TABLE taskqueue.%I', old.name);
        partition_name := old.name;
        starts := old.starts;
        ends := old.ends;
        estimated_rows := old.estimated;
        RETURN NEXT;
    END LOOP;
END
$$;
