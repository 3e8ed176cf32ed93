-- What GET /health reports, refreshed every few seconds by each API process
-- (never per probe): live workers, and tasks due and waiting for a worker.
SELECT (SELECT count(*) FROM taskqueue.workers
        WHERE state <> 'stopped'
          AND last_heartbeat_at >= now() - make_interval(secs => 3 * heartbeat_seconds))
           AS workers,
       (SELECT count(*) FROM taskqueue.tasks WHERE status = 'queued' AND run_at <= now())
           AS queue_depth;
