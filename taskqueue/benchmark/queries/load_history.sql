-- taskqueue bench (history): finished tasks numbered $1..$2 of $3, queue
-- 'default', type noop, each with the three events a real one leaves. They
-- finished within the last hour (no earlier than today's UTC midnight, so
-- their events fall in today's partition, and inside every retention period,
-- so no pruning starts during the drain measured next); ids have the UUIDv7
-- layout of their creation time, so they sort before any task enqueued later.
--   $1 bigint first number, $2 bigint last number, $3 bigint how many in all
WITH span AS (
    SELECT now() AS hi,
           greatest(now() - interval '1 hour', date_trunc('day', now(), 'UTC')) AS lo
),
numbered AS (
    SELECT i, lo + (hi - lo) * (i::float8 / $3) AS created_at
    FROM span, generate_series($1::bigint, $2::bigint) AS i
),
finished AS (
    INSERT INTO taskqueue.tasks (id, type, status, attempts, run_at, created_at,
                                 started_at, completed_at)
    SELECT (lpad(to_hex((extract(epoch FROM created_at) * 1000)::bigint), 12, '0')
            || '7000' || '8' || lpad(to_hex(i), 15, '0'))::uuid,
           'noop', 'succeeded', 1, created_at, created_at,
           created_at + interval '2 ms', created_at + interval '3 ms'
    FROM numbered
    RETURNING id, created_at
)
INSERT INTO taskqueue.task_events (task_id, at, event_type, status, attempt, worker_id)
SELECT f.id, f.created_at + e.after, e.event_type, e.status::taskqueue.task_status,
       e.attempt, e.worker_id
FROM finished f
CROSS JOIN (VALUES (interval '0', 'task_queued', 'queued', 0, NULL),
                   (interval '2 ms', 'task_started', 'running', 1, 'bench-history'),
                   (interval '3 ms', 'task_succeeded', 'succeeded', 1, 'bench-history'))
    AS e(after, event_type, status, attempt, worker_id);
