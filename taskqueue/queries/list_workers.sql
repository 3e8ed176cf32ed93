-- The worker registry, newest first, each worker running, stopping, stopped
-- or lost (see _live_worker.sql).
--   $1 int skip this many (NULL: none)
--   $2 int at most this many (NULL: all)
SELECT id, host, pid, queues, types, concurrency, in_flight, version, started_at,
       last_heartbeat_at, stopped_at,
       CASE
           WHEN state = 'stopped' OR
               -- include: _live_worker.sql
               THEN state
           ELSE 'lost'
       END AS state
FROM taskqueue.workers w
ORDER BY started_at DESC, id
OFFSET coalesce($1::int, 0)
LIMIT $2::int;
