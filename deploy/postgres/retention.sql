-- Retention of finished tasks: deletes tasks that finished (succeeded, failed,
-- cancelled) more than :keep_tasks_days ago (default 30). Their history stays:
-- events have no foreign key, so they stay readable after their task is gone.
--
-- Event retention is built in: task_events is partitioned by day, and workers
-- drop whole days older than TASKQUEUE_RETAIN_EVENTS (default 30d; README,
-- "History partitions"). This file no longer deletes events (a
-- keep_events_days given to it is ignored).
--
-- Run it as taskqueue_migrator, the owner (workers and the auditor may not
-- delete), e.g.
-- daily from cron, a systemd timer or a Kubernetes CronJob:
--
--   psql "$MIGRATOR_URL" -v ON_ERROR_STOP=1 -v keep_tasks_days=30 \
--        -f deploy/postgres/retention.sql
--
-- Not with --single-transaction: it deletes in batches of :batch_size rows
-- (default 5000), oldest first, each batch committed on its own, so that no
-- lock or snapshot is held for long and autovacuum keeps up. Tasks are walked
-- by primary key (UUIDv7, time ordered) and the walk stops at the first batch
-- made after the cut-off, so a run costs what it deletes, not the size of the
-- table.

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
SET taskqueue.keep_tasks_days = :'keep_tasks_days';
SET taskqueue.batch_size = :'batch_size';

DO $retention$
DECLARE
    batch_size constant int := current_setting('taskqueue.batch_size')::int;
    tasks_before constant timestamptz :=
        now() - make_interval(days => current_setting('taskqueue.keep_tasks_days')::int);
    last_task uuid := '00000000-0000-0000-0000-000000000000';
    oldest timestamptz;
    seen int;
    deleted int;
    tasks_deleted bigint := 0;
BEGIN
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

    RAISE NOTICE 'retention: deleted % finished tasks (before %)', tasks_deleted, tasks_before;
END
$retention$;
