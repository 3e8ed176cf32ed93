-- write-path: api
-- A large batch of new tasks (store/bulk_copy.py), sent as one binary array
-- of taskqueue.task_input rows: they go into taskqueue.tasks (status,
-- attempts, lease and result left to their defaults), each with its
-- task_queued event, their claim lanes are opened, and one NOTIFY is sent.
-- The tasks are due now: their run_at and created_at are this statement's
-- statement_timestamp(), which this returns.
--   $1 taskqueue.task_input[]  the tasks
--   $2 text[]  queue, $3 text[] type, $4 int[] priority, $5 text[] tenant ('': none):
--              their distinct lanes
--   $6 text[]  tenants among them, $7 bigint[] how many tasks each (empty
--              without tenants)
WITH given AS (
    SELECT * FROM unnest($1::taskqueue.task_input[])
),
copied AS (
    INSERT INTO taskqueue.tasks (id, queue, type, name, payload, priority, max_retries,
                                 timeout_seconds, idempotency_key, traceparent, expires_at,
                                 callback, tenant, sequence_key, sequence_on_failure,
                                 concurrency_key)
    SELECT id, queue, type, name, payload, priority, max_retries, timeout_seconds,
           idempotency_key, traceparent, expires_at, callback, tenant, sequence_key,
           sequence_on_failure, concurrency_key
    FROM given
    RETURNING id
),
lane_rows AS (
    SELECT l.queue, l.type, l.priority, statement_timestamp() AS run_at, l.tenant
    FROM unnest($2::text[], $3::text[], $4::int[], $5::text[]) AS l(queue, type, priority, tenant)
),
-- include: _open_lanes.sql
,
admitted AS (
    -- As enqueue_tasks.sql: each tenant's quota, in name order; over it the
    -- batch's transaction fails whole (SQLSTATE TQ429).
    SELECT taskqueue.admit_tasks(t.tenant, t.n) AS n
    FROM unnest($6::text[], $7::bigint[]) AS t(tenant, n)
),
queued_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt)
    SELECT id, 'task_queued', 'queued', 0 FROM copied
),
due_queues AS (
    SELECT string_agg(DISTINCT queue, ',') AS queues FROM lane_rows
)
SELECT statement_timestamp() AS created_at,
       (SELECT sum(n) FROM admitted) AS admitted,
       (SELECT count(pg_notify('taskqueue', CASE WHEN length(queues) > 7000 THEN '*' ELSE queues END))
        FROM due_queues WHERE queues IS NOT NULL) AS notified;
