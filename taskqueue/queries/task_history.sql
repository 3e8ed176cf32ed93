-- Every event of one task, oldest first.
--   $1 uuid task id
SELECT id, task_id, at, event_type, status, attempt, worker_id, error, detail
FROM taskqueue.task_events
WHERE task_id = $1
ORDER BY id;
