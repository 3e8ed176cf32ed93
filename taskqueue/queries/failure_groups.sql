-- The dead-letter view: failed tasks grouped by queue, type and error group
-- (taskqueue.error_group: the first line, with ids and numbers masked), the
-- biggest groups first. Reads tasks_failed_idx.
--   $1 text        queue (NULL: any)
--   $2 text        type (NULL: any)
--   $3 timestamptz failed at or after (NULL: any time)
--   $4 int         how many groups at most
--   $5 int         skip this many groups first
--   $6 text        tenant (NULL: any)
SELECT queue, type, taskqueue.error_group(last_error) AS error,
       count(*) AS count,
       min(completed_at) AS first_failed_at,
       max(completed_at) AS last_failed_at,
       (array_agg(id ORDER BY completed_at DESC))[1] AS sample_task_id
FROM taskqueue.tasks
WHERE status = 'failed'
  AND ($1::text IS NULL OR queue = $1)
  AND ($2::text IS NULL OR type = $2)
  AND ($3::timestamptz IS NULL OR completed_at >= $3)
  AND ($6::text IS NULL OR tenant = $6)
GROUP BY queue, type, taskqueue.error_group(last_error)
ORDER BY count(*) DESC, max(completed_at) DESC, queue, type, 3
OFFSET $5
LIMIT $4;
