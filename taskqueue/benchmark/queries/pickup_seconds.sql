-- taskqueue bench (pooling): from enqueue to claim, per task (DB clock).
--   $1 uuid[]: the tasks
SELECT extract(epoch FROM started_at - created_at)::float8 AS seconds
FROM taskqueue.tasks
WHERE id = ANY($1::uuid[]);
