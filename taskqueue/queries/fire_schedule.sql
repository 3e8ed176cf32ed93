-- write-path: worker
-- Fire the due slots of one schedule, at most once each, in one statement:
-- advance next_run_at with a compare-and-set, insert a task per slot with its
-- task_queued event (detail: schedule and slot), record each slot in the
-- ledger, and wake workers with one NOTIFY.
--
-- Exactly once without a leader: every worker may run this for the same
-- slots; the row lock (SKIP LOCKED: a loser does not wait) and the compare on
-- next_run_at let one of them through, and the others change nothing. Behind
-- that, the ledger's unique (schedule, slot) key keeps a slot from becoming a
-- second task even if next_run_at was moved back by hand.
--
-- overlap = 'skip': a slot fires only while the schedule's newest task is
-- neither queued nor running; otherwise it is recorded as skipped. Of several
-- slots fired at once only the first can fire then, since each one's
-- predecessor is still queued.
--   $1 text          schedule name
--   $2 timestamptz   next_run_at as the caller read it (the compare)
--   $3 timestamptz   next_run_at after this firing (the first slot after now)
--   $4 timestamptz[] slots to fire, oldest first
--   $5 uuid[]        a task id for each slot (UUIDv7, made by the client)
--   $6 jsonb         slots left unfired by the catch-up policy: count and
--                    range (NULL: none), recorded as one 'missed' row
--   $7 text          the firing worker, for the task_queued events (NULL: none)
-- Returns one row: advanced (0: another worker fired these slots, or the
-- schedule changed or was paused meanwhile), the slots fired, the slots
-- skipped, and how many slots the ledger already held.
WITH due AS (
    SELECT *
    FROM taskqueue.schedules
    WHERE name = $1::text AND next_run_at = $2::timestamptz AND NOT paused
    FOR UPDATE SKIP LOCKED
),
live AS (
    SELECT t.id
    FROM taskqueue.tasks t
    JOIN due ON t.id = due.last_task_id
    WHERE due.overlap = 'skip' AND t.status IN ('queued', 'running')
),
planned AS (
    SELECT p.slot, p.task_id,
           due.overlap = 'allow' OR (p.ord = 1 AND live.id IS NULL) AS fire,
           coalesce(live.id, ($5::uuid[])[1]) AS live_task
    FROM due
    CROSS JOIN unnest($4::timestamptz[], $5::uuid[]) WITH ORDINALITY AS p(slot, task_id, ord)
    LEFT JOIN live ON true
),
recorded AS (
    INSERT INTO taskqueue.schedule_fires (schedule, slot, outcome, task_id, detail)
    SELECT $1::text, slot,
           CASE WHEN fire THEN 'fired' ELSE 'skipped' END,
           CASE WHEN fire THEN task_id END,
           CASE WHEN NOT fire
                THEN jsonb_build_object('reason', 'overlap', 'live_task', live_task) END
    FROM planned
    ON CONFLICT (schedule, slot) WHERE slot IS NOT NULL DO NOTHING
    RETURNING slot, task_id
),
missed AS (
    INSERT INTO taskqueue.schedule_fires (schedule, outcome, detail)
    SELECT $1::text, 'missed', $6::jsonb FROM due WHERE $6::jsonb IS NOT NULL
),
inserted AS (
    INSERT INTO taskqueue.tasks (id, queue, type, name, payload, priority, max_retries,
                                 timeout_seconds, schedule, slot)
    SELECT r.task_id, due.queue, due.type, due.name, due.payload, due.priority,
           due.max_retries, due.timeout_seconds, due.name, r.slot
    FROM recorded r
    CROSS JOIN due
    WHERE r.task_id IS NOT NULL
    RETURNING id, queue, type, priority, run_at, slot, tenant
),
lane_rows AS (
    SELECT queue, type, priority, run_at, tenant FROM inserted
),
-- include: _open_lanes.sql
,
queued_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, worker_id, detail)
    SELECT id, 'task_queued', 'queued', 0, $7::text,
           jsonb_build_object('schedule', $1::text, 'slot', slot)
    FROM inserted
),
advanced AS (
    UPDATE taskqueue.schedules s
    SET next_run_at = $3::timestamptz,
        last_task_id = coalesce((SELECT id FROM inserted ORDER BY slot DESC LIMIT 1),
                                s.last_task_id)
    FROM due
    WHERE s.name = due.name
    RETURNING s.name
)
SELECT (SELECT count(*) FROM advanced) AS advanced,
       (SELECT coalesce(array_agg(slot ORDER BY slot), '{}') FROM inserted) AS fired,
       (SELECT coalesce(array_agg(slot ORDER BY slot), '{}') FROM recorded
        WHERE task_id IS NULL) AS skipped,
       (SELECT count(*) FROM planned) - (SELECT count(*) FROM recorded) AS already_recorded,
       (SELECT pg_notify('taskqueue', queue) IS NOT NULL FROM inserted LIMIT 1) AS notified;
