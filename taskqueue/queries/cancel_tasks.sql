-- Bulk cancel: matched tasks that are queued or running become cancelled,
-- each with its task_cancelled event (a running one names its worker and
-- attempt, and its lease ends here: the worker's outcome will fail the
-- fence). Limited queues count their running tasks down; each worker that
-- held some is told which to stop (one NOTIFY per worker and 100 tasks); the
-- action is logged.
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
    SET status = 'cancelled', completed_at = now(), locked_by = NULL, locked_until = NULL
    FROM matched m
    WHERE t.id = m.id AND m.status IN ('queued', 'running')
    RETURNING t.id, t.queue, t.attempts, m.status AS was, m.locked_by AS worker
),
changed_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, worker_id, detail)
    SELECT id, 'task_cancelled', 'cancelled', attempts,
           CASE WHEN was = 'running' THEN worker END,
           jsonb_build_object('was', was)
    FROM changed
),
running_counted AS (
    UPDATE taskqueue.queues s
    SET running = greatest(s.running - c.n, 0)
    FROM (SELECT queue, count(*)::int AS n FROM changed WHERE was = 'running' GROUP BY queue) AS c
    WHERE s.name = c.queue AND s.concurrency_limit IS NOT NULL
),
to_stop AS (
    SELECT worker, id, (row_number() OVER (PARTITION BY worker ORDER BY id) - 1) / 100 AS chunk
    FROM changed
    WHERE was = 'running'
),
notices AS (
    SELECT pg_notify('taskqueue_control',
                     json_build_object('worker', worker, 'cancel', json_agg(id))::text)
    FROM to_stop
    GROUP BY worker, chunk
),
summary AS (
    SELECT (SELECT count(*) FROM matched) AS matched,
           (SELECT count(*) FROM changed) AS changed,
           (SELECT id FROM matched ORDER BY id DESC LIMIT 1) AS last_id
),
logged AS (
    INSERT INTO taskqueue.operator_actions (actor, action, scope, result)
    SELECT $9, 'cancel', $10::jsonb, jsonb_build_object('matched', matched, 'changed', changed)
    FROM summary
)
SELECT matched, changed, last_id, (SELECT count(*) FROM notices) AS notified
FROM summary;
