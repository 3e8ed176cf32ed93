-- Retention: deletes task_events older than :keep_events_days (default 90)
-- and finished tasks (succeeded, failed, cancelled) that finished more than
-- :keep_tasks_days ago (default 30). History outlives the tasks on purpose:
-- events have no foreign key, so they stay readable after their task is gone.
--
-- Run it as taskqueue_migrator, the owner (no other role may delete), e.g.
-- daily from cron, a systemd timer or a Kubernetes CronJob:
--
--   psql "$MIGRATOR_URL" -v ON_ERROR_STOP=1 -v keep_events_days=90 \
--        -v keep_tasks_days=30 -f deploy/postgres/retention.sql
--
-- Not with --single-transaction: it deletes in batches of :batch_size rows
-- (default 5000), oldest first, each batch committed on its own, so that no
-- lock or snapshot is held for long and autovacuum keeps up. Both tables are
-- walked by primary key (event ids grow with time; task ids are UUIDv7, time
-- ordered) and the walk stops at the first batch made after the cut-off, so a
-- run costs what it deletes, not the size of the tables.

\if :{?keep_events_days}
\else
    \set keep_events_days 90
\endif
\if :{?keep_tasks_days}
\else
    \set keep_tasks_days 30
\endif
\if :{?batch_size}
\else
    \set batch_size 5000
\endif
-- The whole run is one statement; its batches are short, the run may not be.
SET statement_timeout = 0;
-- psql variables do not reach inside a DO block; settings do.
SET taskqueue.keep_events_days = :'keep_events_days';
SET taskqueue.keep_tasks_days = :'keep_tasks_days';
SET taskqueue.batch_size = :'batch_size';

DO $retention$
DECLARE
    batch_size constant int := current_setting('taskqueue.batch_size')::int;
    events_before constant timestamptz :=
        now() - make_interval(days => current_setting('taskqueue.keep_events_days')::int);
    tasks_before constant timestamptz :=
        now() - make_interval(days => current_setting('taskqueue.keep_tasks_days')::int);
    last_event bigint := 0;
    last_task uuid := '00000000-0000-0000-0000-000000000000';
    oldest timestamptz;
    seen int;
    deleted int;
    events_deleted bigint := 0;
    tasks_deleted bigint := 0;
BEGIN
    LOOP
        WITH batch AS (
            SELECT id, at FROM taskqueue.task_events
            WHERE id > last_event ORDER BY id LIMIT batch_size
        ),
        gone AS (
            DELETE FROM taskqueue.task_events e USING batch b
            WHERE e.id = b.id AND e.at < events_before
            RETURNING 1
        )
        SELECT max(id), min(at), count(*), (SELECT count(*) FROM gone)
        INTO last_event, oldest, seen, deleted
        FROM batch;
        events_deleted := events_deleted + deleted;
        COMMIT;
        EXIT WHEN seen < batch_size OR oldest >= events_before;
    END LOOP;

    LOOP
        WITH batch AS (
            SELECT id, created_at FROM taskqueue.tasks
            WHERE id > last_task ORDER BY id LIMIT batch_size
        ),
        gone AS (
            -- Conditions on t, not b: re-checked if the row changed meanwhile
            -- (a manual retry puts a failed task back in the queue).
            DELETE FROM taskqueue.tasks t USING batch b
            WHERE t.id = b.id
              AND t.status IN ('succeeded', 'failed', 'cancelled')
              AND t.completed_at < tasks_before
            RETURNING 1
        )
        SELECT max(id::text)::uuid, min(created_at), count(*), (SELECT count(*) FROM gone)
        INTO last_task, oldest, seen, deleted
        FROM batch;
        tasks_deleted := tasks_deleted + deleted;
        COMMIT;
        -- A task made after the cut-off cannot have finished before it.
        EXIT WHEN seen < batch_size OR oldest >= tasks_before;
    END LOOP;

    RAISE NOTICE 'retention: deleted % events (before %) and % finished tasks (before %)',
        events_deleted, events_before, tasks_deleted, tasks_before;
END
$retention$;
