-- write-path: api
-- Insert a batch of tasks in one statement, write each one's task_queued
-- event in the same statement, and wake workers with at most one NOTIFY.
-- A task whose idempotency key already exists is skipped (not returned); the
-- caller looks the existing row up afterwards, in a statement of its own, so
-- that it sees a row a concurrent transaction has just committed.
--   $1 json: an array of objects, one per task, with the keys
--      id (UUIDv7, made by the client), queue, type, name, payload, priority,
--      max_retries, timeout_seconds, run_at (NULL: statement_timestamp() +
--      delay_us), delay_us (microseconds after the database's clock when the
--      statement began), idempotency_key,
--      and traceparent (absent unless the producer is traced); expires_at or
--      ttl_us (microseconds after statement_timestamp()), callback, tenant and
--      concurrency_key, absent unless the task has them (a task with a
--      sequence_key takes enqueue_dependent_tasks.sql).
-- Returns one row: the ids inserted and statement_timestamp() (every task's
-- created_at, and what a task without run_at is due from, plus its delay),
-- so the client builds the tasks from what it sent instead of decoding a row
-- each.
-- One JSON document rather than eleven arrays: the client encodes it in one
-- call and the server parses it in one pass, which is what bulk loads need.
WITH input AS (
    SELECT *
    FROM json_to_recordset($1::json)
        AS i(id uuid, queue text, type text, name text, payload jsonb, priority int,
             max_retries int, timeout_seconds float8, run_at timestamptz,
             delay_us bigint, idempotency_key text, traceparent text,
             expires_at timestamptz, ttl_us bigint, callback jsonb, tenant text,
             concurrency_key text)
),
inserted AS (
    INSERT INTO taskqueue.tasks (id, queue, type, name, payload, priority, max_retries,
                                 timeout_seconds, run_at, idempotency_key, traceparent,
                                 expires_at, callback, tenant, concurrency_key)
    SELECT id, queue, type, name, payload, priority, max_retries, timeout_seconds,
           coalesce(run_at, statement_timestamp() + delay_us * interval '1 microsecond'),
           idempotency_key, traceparent,
           coalesce(expires_at, statement_timestamp() + ttl_us * interval '1 microsecond'),
           callback, tenant, concurrency_key
    FROM input
    -- Any unique index: the idempotency key's, which is (tenant, key) since
    -- 0027_idempotency_per_tenant and (key) before it (ids never collide).
    ON CONFLICT DO NOTHING
    RETURNING id, queue, type, priority, run_at, tenant
),
admitted AS (
    -- Each tenant's quota (taskqueue.admit_tasks, 0013_tenants), in name
    -- order (the order its rows are locked in): over it, the statement fails
    -- (SQLSTATE TQ429) and the batch is refused whole. No call without tenants.
    SELECT taskqueue.admit_tasks(tenant, n) AS n
    FROM (SELECT tenant, count(*) AS n FROM inserted WHERE tenant IS NOT NULL
          GROUP BY tenant ORDER BY tenant) AS per_tenant
),
lane_rows AS (
    SELECT queue, type, priority, run_at, tenant FROM inserted
),
-- include: _open_lanes.sql
,
queued_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt)
    SELECT id, 'task_queued', 'queued', 0 FROM inserted
),
-- One NOTIFY for the whole statement (a per-row trigger would serialise
-- commits); only for tasks that are due now, naming their queues.
due_queues AS (
    SELECT string_agg(DISTINCT queue, ',') AS queues
    FROM inserted WHERE run_at <= statement_timestamp()
)
SELECT (SELECT array_agg(id) FROM inserted) AS ids, statement_timestamp() AS created_at,
       (SELECT sum(n) FROM admitted) AS admitted,
       (SELECT pg_notify('taskqueue', CASE WHEN length(queues) > 7000 THEN '*' ELSE queues END)
               IS NOT NULL
        FROM due_queues WHERE queues IS NOT NULL) AS notified;
