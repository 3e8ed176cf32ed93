-- Undo 0008_partitioned_events: task_events becomes one plain table again,
-- every event kept with its id; the identity continues after the last id the
-- sequence gave. Grants on the partitioned table are copied over.
CREATE TABLE taskqueue.task_events_unpartitioned (
    id         bigint GENERATED ALWAYS AS IDENTITY,
    task_id    uuid NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    event_type text NOT NULL,
    status     taskqueue.task_status NOT NULL,
    attempt    integer NOT NULL,
    worker_id  text,
    error      text,
    detail     jsonb
) WITH (
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02
);

INSERT INTO taskqueue.task_events_unpartitioned OVERRIDING SYSTEM VALUE
SELECT id, task_id, at, event_type, status, attempt, worker_id, error, detail
FROM taskqueue.task_events;

DO $$
BEGIN
    PERFORM setval(pg_get_serial_sequence('taskqueue.task_events_unpartitioned', 'id'),
                   last_value, is_called)
    FROM taskqueue.task_events_id_seq;
END
$$;

DO $grants$
DECLARE
    g record;
BEGIN
    FOR g IN
        SELECT a.privilege_type AS privilege, a.grantee::regrole::text AS grantee
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
        WHERE c.oid = 'taskqueue.task_events'::regclass
          AND a.grantee <> c.relowner AND a.grantee <> 0
    LOOP
        EXECUTE format('GRANT %s ON taskqueue.task_events_unpartitioned TO %s',
                       g.privilege, g.grantee);
    END LOOP;
    FOR g IN
        SELECT a.privilege_type AS privilege, a.grantee::regrole::text AS grantee,
               t.attname AS col
        FROM pg_attribute t CROSS JOIN LATERAL aclexplode(t.attacl) a
        WHERE t.attrelid = 'taskqueue.task_events'::regclass
          AND t.attacl IS NOT NULL AND a.grantee <> 0
    LOOP
        EXECUTE format('GRANT %s (%I) ON taskqueue.task_events_unpartitioned TO %s',
                       g.privilege, g.col, g.grantee);
    END LOOP;
END
$grants$;

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
FROM taskqueue.task_events_unpartitioned e
LEFT JOIN taskqueue.tasks t ON t.id = e.task_id;

DROP FUNCTION taskqueue.drop_event_partitions(timestamptz);
DROP FUNCTION taskqueue.ensure_event_partitions(integer, timestamptz);
DROP FUNCTION taskqueue.create_event_partition(date);
DROP FUNCTION taskqueue.event_partitions();
DROP TABLE taskqueue.task_events;  -- with every partition and the sequence it owns

ALTER TABLE taskqueue.task_events_unpartitioned RENAME TO task_events;
ALTER SEQUENCE taskqueue.task_events_unpartitioned_id_seq RENAME TO task_events_id_seq;
ALTER TABLE taskqueue.task_events ADD CONSTRAINT task_events_pkey PRIMARY KEY (id);
CREATE INDEX task_events_task_idx ON taskqueue.task_events (task_id, id);
CREATE INDEX task_events_at_idx ON taskqueue.task_events USING brin (at);
