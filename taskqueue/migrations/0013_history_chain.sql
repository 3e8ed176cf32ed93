-- Tamper evidence for the history (issue 21): a hash chain over task_events.
-- Every statement that writes events appends one link to one of a few
-- lanes (a statement-level trigger; the lane is the first one no other open
-- transaction holds, so writers do not queue behind each other). A link
-- seals each event it covers (a digest of all its fields, id and time
-- included) and, for a task_queued or task_succeeded event, the task's
-- payload or result as written; its hash covers the previous link's hash.
-- `taskqueue verify-history` (queries/verify_history.sql) recomputes it all.
-- depends: 0012_session_revocations

-- One row per lane: its newest link. Locked by the statement that extends it,
-- until that transaction ends.
CREATE TABLE taskqueue.history_heads (
    lane integer PRIMARY KEY,
    seq  bigint NOT NULL DEFAULT 0,
    hash bytea NOT NULL DEFAULT ''::bytea
) WITH (fillfactor = 50);  -- updated in place (HOT) by every writing statement
INSERT INTO taskqueue.history_heads (lane) SELECT generate_series(0, 15);

CREATE TABLE taskqueue.history_links (
    lane       integer NOT NULL,
    seq        bigint NOT NULL,
    at         timestamptz NOT NULL,   -- its events' earliest time (their now())
    written_by text NOT NULL,          -- session_user: the login role that wrote them
    events     bigint[] NOT NULL,      -- event ids, ascending
    tasks      uuid[] NOT NULL,        -- each event's task
    digests    bytea[] NOT NULL,       -- each event's taskqueue.event_digest()
    seals      bytea[] NOT NULL,       -- sha256 of the payload (task_queued) or
                                       -- result (task_succeeded) as written; else NULL
    hash       bytea NOT NULL,         -- taskqueue.history_link_hash() over the above
    PRIMARY KEY (lane, seq)
);
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

-- An event's fields, sealed. Its time in microseconds since the epoch, so
-- that no session setting changes the text that is hashed.
CREATE FUNCTION taskqueue.event_digest(
    id bigint, task_id uuid, at timestamptz, event_type text, status text, attempt integer,
    worker_id text, error text, detail jsonb
) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE
RETURN pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.json_build_array(
    id, task_id, (extract(epoch FROM at) * 1000000)::bigint, event_type, status, attempt,
    worker_id, error, detail)::text, 'UTF8'));

CREATE FUNCTION taskqueue.document_seal(document jsonb) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE
RETURN pg_catalog.sha256(pg_catalog.convert_to(coalesce(document::text, 'null'), 'UTF8'));

CREATE FUNCTION taskqueue.history_link_hash(
    prev bytea, lane integer, seq bigint, at timestamptz, written_by text,
    events bigint[], tasks uuid[], digests bytea[], seals bytea[]
) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE
RETURN pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.json_build_array(
    pg_catalog.encode(prev, 'hex'), lane, seq, (extract(epoch FROM at) * 1000000)::bigint,
    written_by, events, tasks,
    ARRAY(SELECT pg_catalog.encode(d, 'hex') FROM unnest(digests) WITH ORDINALITY AS x(d, n)
          ORDER BY n),
    ARRAY(SELECT pg_catalog.encode(s, 'hex') FROM unnest(seals) WITH ORDINALITY AS x(s, n)
          ORDER BY n))::text, 'UTF8'));

-- The link of one statement's events. SECURITY DEFINER: nobody else may
-- write the chain; search_path pinned.
CREATE FUNCTION taskqueue.seal_events() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    lanes constant integer := 16;
    head record;
    link record;
BEGIN
    -- The first lane, counting from this backend's, that no other open
    -- transaction holds; when all are held, wait for this backend's own.
    SELECT h.lane, h.seq, h.hash INTO head
    FROM taskqueue.history_heads h
    ORDER BY (h.lane - pg_backend_pid() % lanes + lanes) % lanes
    LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        SELECT h.lane, h.seq, h.hash INTO head
        FROM taskqueue.history_heads h WHERE h.lane = pg_backend_pid() % lanes
        FOR UPDATE;
    END IF;
    SELECT min(n.at) AS at,
           array_agg(n.id ORDER BY n.id) AS events,
           array_agg(n.task_id ORDER BY n.id) AS tasks,
           array_agg(taskqueue.event_digest(n.id, n.task_id, n.at, n.event_type, n.status::text,
                                            n.attempt, n.worker_id, n.error, n.detail)
                     ORDER BY n.id) AS digests,
           array_agg(CASE n.event_type
                         WHEN 'task_queued' THEN taskqueue.document_seal(t.payload)
                         WHEN 'task_succeeded' THEN taskqueue.document_seal(t.result)
                     END ORDER BY n.id) AS seals
    INTO link
    FROM new_events n
    LEFT JOIN taskqueue.tasks t
      ON t.id = n.task_id AND n.event_type IN ('task_queued', 'task_succeeded');
    IF link.events IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO taskqueue.history_links (lane, seq, at, written_by, events, tasks, digests,
                                         seals, hash)
    VALUES (head.lane, head.seq + 1, link.at, session_user, link.events, link.tasks,
            link.digests, link.seals,
            taskqueue.history_link_hash(head.hash, head.lane, head.seq + 1, link.at,
                                        session_user, link.events, link.tasks, link.digests,
                                        link.seals));
    UPDATE taskqueue.history_heads
    SET seq = head.seq + 1,
        hash = taskqueue.history_link_hash(head.hash, head.lane, head.seq + 1, link.at,
                                           session_user, link.events, link.tasks,
                                           link.digests, link.seals)
    WHERE lane = head.lane;
    RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION taskqueue.seal_events() FROM PUBLIC;

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
