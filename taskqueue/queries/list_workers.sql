-- The worker registry, newest first. A worker that has not stopped but whose
-- heartbeat is more than three of its intervals old is lost (killed,
-- partitioned, its host gone).
SELECT id, host, pid, queues, types, concurrency, in_flight, version, started_at,
       last_heartbeat_at, stopped_at,
       CASE
           WHEN state <> 'stopped'
                AND last_heartbeat_at < now() - make_interval(secs => 3 * heartbeat_seconds)
               THEN 'lost'
           ELSE state
       END AS state
FROM taskqueue.workers
ORDER BY started_at DESC, id;
