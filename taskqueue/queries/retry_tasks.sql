-- Bulk retry: matched tasks that failed or were cancelled go back to their
-- queue, due now, with a fresh retry budget, each with its task_requeued
-- event; one NOTIFY for the statement; the action is logged.
--   $1 uuid[]      the tasks, by id (NULL: the ones the filter matches)
--   $2 task_status filter: status (NULL: any)
--   $3 text        filter: queue (NULL: any)
--   $4 text        filter: type (NULL: any)
--   $5 text        filter: error group, as failure_groups.sql shows it (NULL: any)
--   $6 timestamptz filter: created before (NULL: any time)
--   $7 uuid        continue after this id (NULL: from the start)
--   $8 int         how many tasks at most this time (a chunk)
--   $9 text        who, for the operator log
--   $10 jsonb      what was asked, for the operator log
-- Returns how many tasks matched, how many changed, and the last id matched
-- (pass it as $7 for the next chunk when matched = $8).
WITH matched AS MATERIALIZED (
    SELECT t.id, t.status, t.locked_by
    FROM taskqueue.tasks t
    WHERE ($1::uuid[] IS NULL OR t.id = ANY ($1::uuid[]))
      AND ($2::taskqueue.task_status IS NULL OR t.status = $2::taskqueue.task_status)
      AND ($3::text IS NULL OR t.queue = $3)
      AND ($4::text IS NULL OR t.type = $4)
      AND ($5::text IS NULL OR taskqueue.error_group(t.last_error) = $5)
      AND ($6::timestamptz IS NULL OR t.created_at < $6)
      AND ($7::uuid IS NULL OR t.id > $7)
    ORDER BY t.id
    LIMIT $8
    FOR UPDATE
),
changed AS (
    UPDATE taskqueue.tasks t
    SET status = 'queued', attempts = 0, run_at = now(), completed_at = NULL,
        locked_by = NULL, locked_until = NULL
    FROM matched m
    WHERE t.id = m.id AND m.status IN ('failed', 'cancelled')
    RETURNING t.id, t.queue
),
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
