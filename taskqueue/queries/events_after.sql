-- Events after an id, oldest first, with their task's queue and type (NULL
-- when the task was deleted): what the live event stream sends.
--   $1 bigint after this event id
--   $2 int    how many at most
SELECT e.id, e.task_id, e.at, e.event_type, e.status::text AS status, e.attempt, e.worker_id,
       t.queue, t.type, t.tenant
FROM taskqueue.task_events e
LEFT JOIN taskqueue.tasks t ON t.id = e.task_id
WHERE e.id > $1
ORDER BY e.id
LIMIT $2;
