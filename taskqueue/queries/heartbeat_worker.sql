-- A worker's heartbeat: alive, holding $2 tasks, in state $3; a state of
-- 'stopped' also records when. Rows of workers gone for longer than $4
-- (stopped, or silent) are pruned on the way: the registry stays small
-- without a job of its own.
--   $1 text   worker id
--   $2 int    tasks it holds (claimed, outcome not yet recorded)
--   $3 text   'running' | 'stopping' | 'stopped'
--   $4 float8 seconds after which a gone worker's row is deleted
WITH pruned AS (
    DELETE FROM taskqueue.workers
    WHERE id <> $1 AND last_heartbeat_at < now() - make_interval(secs => $4)
)
UPDATE taskqueue.workers
SET last_heartbeat_at = now(), in_flight = $2, state = $3,
    stopped_at = CASE WHEN $3 = 'stopped' THEN now() END
WHERE id = $1;
