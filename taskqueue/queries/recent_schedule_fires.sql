-- A schedule's newest ledger rows, each with the current status of its task.
--   $1 text schedule name
--   $2 int  how many
SELECT f.id, f.slot, f.at, f.outcome, f.task_id, t.status::text AS task_status, f.detail
FROM taskqueue.schedule_fires f
LEFT JOIN taskqueue.tasks t ON t.id = f.task_id
WHERE f.schedule = $1::text
ORDER BY f.id DESC
LIMIT $2;
