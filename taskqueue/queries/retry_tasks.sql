-- Bulk retry: matched tasks that failed or were cancelled go back to their
-- queue, due now, with a fresh retry budget, each with its task_requeued
-- event, taken back out of the finish counts (queue_counts); one NOTIFY for
-- the statement; the action is logged.
--   $1-$8          which tasks, and how many at most: see _bulk_match.sql
--   $9 text        who, for the operator log
--   $10 jsonb      what was asked, for the operator log
-- Returns how many tasks matched, how many changed, and the last id matched
-- (pass it as $7 for the next chunk when matched = $8).
WITH
-- include: _bulk_match.sql
changed AS (
    UPDATE taskqueue.tasks t
    SET status = 'queued', attempts = 0, run_at = now(), completed_at = NULL,
        locked_by = NULL, locked_until = NULL
    FROM matched m
    WHERE t.id = m.id AND m.status IN ('failed', 'cancelled')
    RETURNING t.id, t.queue, t.type, t.priority, t.run_at,
              m.status AS was, m.attempts AS was_attempts
),
uncounted AS (
    -- No longer finished: taken back out of queue_counts, one row per queue.
    INSERT INTO taskqueue.queue_counts (queue, failed, cancelled, retries, tasks_with_retries)
    SELECT queue, -count(*) FILTER (WHERE was = 'failed'),
           -count(*) FILTER (WHERE was = 'cancelled'),
           -sum(greatest(was_attempts - 1, 0)), -count(*) FILTER (WHERE was_attempts > 1)
    FROM changed
    GROUP BY queue
),
lane_rows AS (
    SELECT queue, type, priority, run_at FROM changed
),
-- include: _open_lanes.sql
,
changed_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt)
    SELECT id, 'task_requeued', 'queued', 0 FROM changed
),
summary AS (
    SELECT (SELECT count(*) FROM matched) AS matched,
           (SELECT count(*) FROM changed) AS changed,
           (SELECT id FROM matched ORDER BY id DESC LIMIT 1) AS last_id,
           (SELECT string_agg(DISTINCT queue, ',') FROM changed) AS queues
),
logged AS (
    INSERT INTO taskqueue.operator_actions (actor, action, scope, result)
    SELECT $9, 'retry', $10::jsonb, jsonb_build_object('matched', matched, 'changed', changed)
    FROM summary
)
SELECT matched, changed, last_id,
       CASE WHEN queues IS NOT NULL
            THEN pg_notify('taskqueue', CASE WHEN length(queues) > 7000 THEN '*' ELSE queues END)
       END AS notified
FROM summary;
