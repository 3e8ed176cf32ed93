-- Tasks that match what a test expects to have been enqueued, oldest first
-- (taskqueue.testing). Read through the test's own connection, so tasks its
-- open transaction inserted are seen.
--   $1 text  type, or NULL for any
--   $2 text  queue, or NULL for any
--   $3 jsonb a document the payload must contain (PostgreSQL's @>), or NULL
--   $4 text  status, or NULL for any
--   $5 int   how many rows at most
SELECT *
FROM taskqueue.tasks
WHERE ($1::text IS NULL OR type = $1::text)
  AND ($2::text IS NULL OR queue = $2::text)
  AND ($3::jsonb IS NULL OR payload @> $3::jsonb)
  AND ($4::text IS NULL OR status = $4::text::taskqueue.task_status)
ORDER BY id
LIMIT $5;
