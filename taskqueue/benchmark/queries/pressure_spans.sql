-- taskqueue bench (pressure): per span of time, tasks enqueued, picked up and
-- succeeded, and the pickup latency of the tasks picked up in it (first
-- task_started minus task_queued, both the database's clock, written in the
-- same statements as the state changes). Everything comes from the events,
-- so it holds whatever structure the claim uses.
--   $1 bigint        only events with a larger id (those of this run)
--   $2 timestamptz[] ascending bounds: span k is [$2[k], $2[k + 1])
WITH events AS MATERIALIZED (
    SELECT task_id, event_type, at, width_bucket(at, $2::timestamptz[]) AS span
    FROM taskqueue.task_events
    WHERE id > $1
      AND event_type IN ('task_queued', 'task_started', 'task_succeeded')
      AND (event_type <> 'task_started' OR attempt = 1)
),
counts AS (
    SELECT span,
           count(*) FILTER (WHERE event_type = 'task_queued') AS queued,
           count(*) FILTER (WHERE event_type = 'task_started') AS started,
           count(*) FILTER (WHERE event_type = 'task_succeeded') AS succeeded
    FROM events
    GROUP BY span
),
-- Grouped by task rather than a self-join: the tables were just truncated,
-- so their statistics may say "empty", and a join planned on that (a nested
-- loop) takes minutes; an aggregate costs the same whatever the estimate.
per_task AS (
    SELECT min(at) FILTER (WHERE event_type = 'task_queued') AS queued_at,
           min(at) FILTER (WHERE event_type = 'task_started') AS started_at
    FROM events
    GROUP BY task_id
),
pickups AS (
    SELECT width_bucket(started_at, $2::timestamptz[]) AS span,
           extract(epoch FROM started_at - queued_at)::float8 * 1000 AS ms
    FROM per_task
    WHERE queued_at IS NOT NULL AND started_at IS NOT NULL
),
latency AS (
    SELECT span,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99,
           max(ms) AS max
    FROM pickups
    GROUP BY span
)
SELECT k.span,
       coalesce(c.queued, 0) AS queued,
       coalesce(c.started, 0) AS started,
       coalesce(c.succeeded, 0) AS succeeded,
       l.p50, l.p99, l.max
FROM generate_series(1, cardinality($2::timestamptz[]) - 1) AS k(span)
LEFT JOIN counts c ON c.span = k.span
LEFT JOIN latency l ON l.span = k.span
ORDER BY k.span;
