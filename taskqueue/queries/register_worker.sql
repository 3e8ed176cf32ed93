-- A worker announces itself at start (a restart under the same id starts
-- the row afresh).
--   $1 text id, $2 text host, $3 int pid, $4 text[] queues, $5 text[] task
--   types, $6 int concurrency, $7 text version, $8 float8 heartbeat interval
INSERT INTO taskqueue.workers (id, host, pid, queues, types, concurrency, version,
                               heartbeat_seconds)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (id) DO UPDATE
SET host = excluded.host, pid = excluded.pid, queues = excluded.queues,
    types = excluded.types, concurrency = excluded.concurrency, version = excluded.version,
    heartbeat_seconds = excluded.heartbeat_seconds, started_at = now(),
    last_heartbeat_at = now(), in_flight = 0, state = 'running', stopped_at = NULL;
