-- write-path: api
-- The rest of a COPY of new tasks into taskqueue.copied_tasks
-- (store/bulk_copy.py), in the COPY's transaction: the staged rows move into
-- taskqueue.tasks (status, attempts, lease and result left to their
-- defaults), each with its task_queued event, their claim lanes are opened,
-- and one NOTIFY is sent. The copied tasks are due now: their run_at and
-- created_at are this statement's statement_timestamp(), which this returns.
--   $1 uuid[]  ids of the copied tasks
--   $2 text[]  queue, $3 text[] type, $4 int[] priority: their distinct lanes
WITH staged AS (
    DELETE FROM taskqueue.copied_tasks WHERE id = ANY($1::uuid[])
    RETURNING id, queue, type, name, payload, priority, max_retries, timeout_seconds,
              idempotency_key, traceparent, expires_at, callback
),
copied AS (
    INSERT INTO taskqueue.tasks (id, queue, type, name, payload, priority, max_retries,
                                 timeout_seconds, idempotency_key, traceparent, expires_at,
                                 callback)
    SELECT id, queue, type, name, payload, priority, max_retries, timeout_seconds,
           idempotency_key, traceparent, expires_at, callback
    FROM staged
    RETURNING id
),
lane_rows AS (
    SELECT l.queue, l.type, l.priority, statement_timestamp() AS run_at
    FROM unnest($2::text[], $3::text[], $4::int[]) AS l(queue, type, priority)
),
-- include: _open_lanes.sql
,
queued_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt)
    SELECT id, 'task_queued', 'queued', 0 FROM copied
),
due_queues AS (
    SELECT string_agg(DISTINCT queue, ',') AS queues FROM lane_rows
)
SELECT statement_timestamp() AS created_at,
       (SELECT count(pg_notify('taskqueue', CASE WHEN length(queues) > 7000 THEN '*' ELSE queues END))
        FROM due_queues WHERE queues IS NOT NULL) AS notified;
