-- History partitioned by day (UTC): task_events becomes a table partitioned
-- by RANGE on `at`, one partition per day (task_events_YYYYMMDD) and a
-- DEFAULT partition that catches any row whose day has no partition yet.
-- Retention then detaches and drops whole days: no DELETE, no dead tuples,
-- no vacuum debt, whatever the size of a day.
-- Existing events are kept (moved into their days' partitions) with their ids.
-- depends: 0007_claim_lanes

-- 1. The old table steps aside, its names freed for the new one.
ALTER TABLE taskqueue.task_events RENAME TO task_events_unpartitioned;
ALTER TABLE taskqueue.task_events_unpartitioned
    RENAME CONSTRAINT task_events_pkey TO task_events_unpartitioned_pkey;
ALTER INDEX taskqueue.task_events_task_idx RENAME TO task_events_unpartitioned_task_idx;
ALTER INDEX taskqueue.task_events_at_idx RENAME TO task_events_unpartitioned_at_idx;
ALTER SEQUENCE taskqueue.task_events_id_seq RENAME TO task_events_unpartitioned_id_seq;

-- 2. The partitioned table. Identity columns on partitioned tables need
-- PostgreSQL 17, so ids come from a sequence of our own; they still grow
-- with insertion, which is what the live stream (events_after) follows.
-- Statements insert without naming id or at, so they are unchanged.
CREATE SEQUENCE taskqueue.task_events_id_seq AS bigint;
-- (DO blocks here and below: yoyo would print what a SELECT returns.)
DO $$
BEGIN
    PERFORM setval('taskqueue.task_events_id_seq', last_value, is_called)
    FROM taskqueue.task_events_unpartitioned_id_seq;
END
$$;

-- The primary key must hold the partition key. Per partition, (id, at) serves
-- what the unique id did: the stream's `id > $1 ORDER BY id`, lookups by id
-- and max(id), each partition answering from its own index.
CREATE TABLE taskqueue.task_events (
    id         bigint NOT NULL DEFAULT nextval('taskqueue.task_events_id_seq'),
    task_id    uuid NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    event_type text NOT NULL,
    status     taskqueue.task_status NOT NULL,
    attempt    integer NOT NULL,
    worker_id  text,
    error      text,
    detail     jsonb,
    CONSTRAINT task_events_pkey PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
ALTER SEQUENCE taskqueue.task_events_id_seq OWNED BY taskqueue.task_events.id;

CREATE INDEX task_events_task_idx ON taskqueue.task_events (task_id, id);
-- Within a day, windows of minutes (the dashboard, recent outcomes) stay
-- range scans; across days, partition pruning does the work.
CREATE INDEX task_events_at_idx ON taskqueue.task_events USING brin (at);

-- The safety net: a row whose day has no partition lands here instead of
-- failing its statement (and with it a claim or a completion). Partition
-- maintenance moves such rows into their day's partition when it creates it;
-- taskqueue_events_default_partition_rows and its alert say when it is not empty.
CREATE TABLE taskqueue.task_events_default PARTITION OF taskqueue.task_events DEFAULT
    WITH (autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.02);

-- 3. Partition maintenance, callable by workers (no leader: whichever comes
-- first does the work, the others find it done). SECURITY DEFINER: DDL needs
-- the owner's rights, and these are the only DDL workers may cause. Time zone
-- and date style are pinned so that day boundaries are UTC and the bounds
-- PostgreSQL prints parse back.

-- Every partition of task_events: its name, its range (NULL for the default
-- partition) and its rows: the planner's estimate for days (NULL until the
-- partition is first analyzed), an exact count for the default partition,
-- which is meant to be empty.
CREATE FUNCTION taskqueue.event_partitions()
RETURNS TABLE (partition_name text, starts timestamptz, ends timestamptz, estimated_rows bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
SET datestyle = 'ISO, YMD'
AS $$
    SELECT c.relname::text,
           b.bounds[1]::timestamptz,
           b.bounds[2]::timestamptz,
           CASE WHEN b.bounds IS NULL THEN (SELECT count(*) FROM taskqueue.task_events_default)
                WHEN c.reltuples >= 0 THEN c.reltuples::bigint
           END
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL (
        SELECT regexp_match(pg_get_expr(c.relpartbound, c.oid),
                            '^FOR VALUES FROM \(''([^'']+)''\) TO \(''([^'']+)''\)$') AS bounds
    ) b
    WHERE i.inhparent = 'taskqueue.task_events'::regclass
    ORDER BY b.bounds[1]::timestamptz NULLS FIRST
$$;

-- One day's partition, unless it exists; true when made. It is built beside
-- the table and then attached: ATTACH takes only SHARE UPDATE EXCLUSIVE on
-- task_events, where CREATE TABLE ... PARTITION OF would take ACCESS
-- EXCLUSIVE and stop every insert and read of the history meanwhile. Rows the
-- default partition caught for that day move in first (a default partition
-- holding rows of a range forbids attaching that range); inserts that would
-- land in the default partition wait until the transaction ends, so none
-- slips in between. Callers hold the maintenance lock.
CREATE FUNCTION taskqueue.create_event_partition(day date) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
AS $$
DECLARE
    part constant text := 'task_events_' || to_char(day, 'YYYYMMDD');
    starts constant timestamptz := day::timestamp AT TIME ZONE 'UTC';
    ends constant timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    IF to_regclass(format('taskqueue.%I', part)) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format(
        'CREATE TABLE taskqueue.%I (LIKE taskqueue.task_events INCLUDING DEFAULTS)'
        ' WITH (autovacuum_vacuum_insert_scale_factor = 0.05,'
        '       autovacuum_analyze_scale_factor = 0.02)', part);
    -- With a constraint proving the range, ATTACH skips scanning the table.
    EXECUTE format('ALTER TABLE taskqueue.%I ADD CONSTRAINT %I CHECK (at >= %L AND at < %L)',
                   part, part || '_range', starts, ends);
    LOCK TABLE taskqueue.task_events_default IN SHARE ROW EXCLUSIVE MODE;
    EXECUTE format(
        'WITH moved AS (DELETE FROM taskqueue.task_events_default'
        '               WHERE at >= %L AND at < %L RETURNING *)'
        ' INSERT INTO taskqueue.%I SELECT * FROM moved', starts, ends, part);
    EXECUTE format('ALTER TABLE taskqueue.task_events ATTACH PARTITION taskqueue.%I'
                   ' FOR VALUES FROM (%L) TO (%L)', part, starts, ends);
    EXECUTE format('ALTER TABLE taskqueue.%I DROP CONSTRAINT %I', part, part || '_range');
    RETURN true;
END
$$;

-- Today's partition and the next `days_ahead` days' (days counted from
-- `from_time`, UTC; tests pass a fixed one), plus one for every day the
-- default partition holds rows of, which moves those rows home. Returns the
-- partitions it made. Idempotent; concurrent callers take turns on a
-- transaction-scoped advisory lock (safe behind a transaction pooler), and
-- the later one finds the work done.
CREATE FUNCTION taskqueue.ensure_event_partitions(
    days_ahead integer, from_time timestamptz DEFAULT NULL
) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
SET lock_timeout = '5s'
AS $$
DECLARE
    first_day constant date := (coalesce(from_time, now()) AT TIME ZONE 'UTC')::date;
    day date;
BEGIN
    IF days_ahead IS NULL OR days_ahead < 0 OR days_ahead > 366 THEN
        RAISE EXCEPTION 'days_ahead must be between 0 and 366, not %', days_ahead
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('taskqueue.task_events partitions', 0));
    FOR day IN
        SELECT g::date FROM generate_series(first_day, first_day + days_ahead, interval '1 day') g
        UNION
        SELECT DISTINCT (e.at AT TIME ZONE 'UTC')::date FROM taskqueue.task_events_default e
        ORDER BY 1
    LOOP
        IF taskqueue.create_event_partition(day) THEN
            RETURN NEXT 'task_events_' || to_char(day, 'YYYYMMDD');
        END IF;
    END LOOP;
END
$$;

-- Event retention: detaches and drops every daily partition whose whole day
-- ends at or before `older_than` (and before now: today's partition is never
-- dropped), oldest first, and returns them. Whole tables go, so nothing is
-- deleted row by row and nothing is left for vacuum. DETACH takes SHARE
-- UPDATE EXCLUSIVE on task_events (DROP TABLE of a partition would take
-- ACCESS EXCLUSIVE on it); the dropped table is standalone by then.
CREATE FUNCTION taskqueue.drop_event_partitions(older_than timestamptz)
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

-- Functions are executable by PUBLIC by default; these only by the roles
-- deploy/postgres/roles.sql names (and the owner).
REVOKE EXECUTE ON FUNCTION taskqueue.event_partitions() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION taskqueue.create_event_partition(date) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION taskqueue.ensure_event_partitions(integer, timestamptz) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION taskqueue.drop_event_partitions(timestamptz) FROM PUBLIC;

-- 4. The old rows move into partitions of their own days, then today's and the
-- next three days' partitions are made, so that a fresh install (even one
-- that only runs the API) writes into day partitions from the start.
DO $$
BEGIN
    PERFORM taskqueue.create_event_partition(d)
    FROM (SELECT DISTINCT (at AT TIME ZONE 'UTC')::date AS d
          FROM taskqueue.task_events_unpartitioned ORDER BY 1) days;
    PERFORM taskqueue.ensure_event_partitions(3);
END
$$;

INSERT INTO taskqueue.task_events (id, task_id, at, event_type, status, attempt, worker_id,
                                   error, detail)
SELECT id, task_id, at, event_type, status, attempt, worker_id, error, detail
FROM taskqueue.task_events_unpartitioned;

-- Whoever could read or insert events still can, without waiting for
-- deploy/postgres/roles.sql to run again; inserting now also draws from the
-- sequence, so inserters get USAGE on it.
DO $grants$
DECLARE
    g record;
BEGIN
    FOR g IN
        SELECT a.privilege_type AS privilege, a.grantee::regrole::text AS grantee
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
        WHERE c.oid = 'taskqueue.task_events_unpartitioned'::regclass
          AND a.grantee <> c.relowner AND a.grantee <> 0
    LOOP
        EXECUTE format('GRANT %s ON taskqueue.task_events TO %s', g.privilege, g.grantee);
    END LOOP;
    FOR g IN
        SELECT a.privilege_type AS privilege, a.grantee::regrole::text AS grantee,
               t.attname AS col
        FROM pg_attribute t CROSS JOIN LATERAL aclexplode(t.attacl) a
        WHERE t.attrelid = 'taskqueue.task_events_unpartitioned'::regclass
          AND t.attacl IS NOT NULL AND a.grantee <> 0
    LOOP
        EXECUTE format('GRANT %s (%I) ON taskqueue.task_events TO %s',
                       g.privilege, g.col, g.grantee);
    END LOOP;
    FOR g IN
        SELECT DISTINCT a.grantee::regrole::text AS grantee
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
        WHERE c.oid = 'taskqueue.task_events'::regclass
          AND a.privilege_type = 'INSERT' AND a.grantee <> c.relowner AND a.grantee <> 0
        UNION
        SELECT DISTINCT a.grantee::regrole::text
        FROM pg_attribute t CROSS JOIN LATERAL aclexplode(t.attacl) a
        WHERE t.attrelid = 'taskqueue.task_events'::regclass
          AND a.privilege_type = 'INSERT' AND a.grantee <> 0
    LOOP
        EXECUTE format('GRANT USAGE ON SEQUENCE taskqueue.task_events_id_seq TO %s', g.grantee);
    END LOOP;
END
$grants$;

-- The psql view reads the new table (same columns, so its grants stay).
CREATE OR REPLACE VIEW taskqueue.task_history AS
SELECT e.id AS event_id,
       e.task_id,
       t.name AS task_name,
       t.type AS task_type,
       t.queue,
       e.event_type,
       e.status,
       e.attempt,
       e.worker_id,
       e.error,
       e.detail,
       e.at
FROM taskqueue.task_events e
LEFT JOIN taskqueue.tasks t ON t.id = e.task_id;

DROP TABLE taskqueue.task_events_unpartitioned;
