-- write-path: api
-- Enqueue one task of a schedule now, by hand, paused or not. It has no slot
-- (so no slot key to take from the schedule's own slots); its task_queued
-- event and its ledger row say it was triggered. It counts as the schedule's
-- newest task for overlap = 'skip'.
--   $1 text schedule name
--   $2 uuid task id (UUIDv7, made by the client)
-- Returns the task, or no row when there is no such schedule.
WITH s AS (
    SELECT * FROM taskqueue.schedules WHERE name = $1::text FOR UPDATE
),
inserted AS (
    INSERT INTO taskqueue.tasks (id, queue, type, name, payload, priority, max_retries,
                                 timeout_seconds, schedule)
    SELECT $2::uuid, queue, type, name, payload, priority, max_retries, timeout_seconds, name
    FROM s
    RETURNING *
),
lane_rows AS (
    SELECT queue, type, priority, run_at, tenant FROM inserted
),
-- include: _open_lanes.sql
,
recorded AS (
    INSERT INTO taskqueue.schedule_fires (schedule, outcome, task_id)
    SELECT schedule, 'triggered', id FROM inserted
),
queued_event AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, detail)
    SELECT id, 'task_queued', 'queued', 0,
           jsonb_build_object('schedule', schedule, 'trigger', 'manual')
    FROM inserted
),
remembered AS (
    UPDATE taskqueue.schedules SET last_task_id = $2::uuid
    FROM s WHERE schedules.name = s.name
)
SELECT inserted.*, pg_notify('taskqueue', inserted.queue) IS NOT NULL AS notified FROM inserted;
