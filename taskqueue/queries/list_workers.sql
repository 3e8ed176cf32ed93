-- The worker registry, newest first, each worker running, stopping, stopped
-- or lost (see _live_worker.sql).
SELECT id, host, pid, queues, types, concurrency, in_flight, version, started_at,
       last_heartbeat_at, stopped_at,
       CASE
           WHEN state = 'stopped' OR
               -- include: _live_worker.sql
               THEN state
           ELSE 'lost'
       END AS state
FROM taskqueue.workers w
ORDER BY started_at DESC, id;
