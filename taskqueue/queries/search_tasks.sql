-- The dashboard's task search: tasks whose name starts with $1 or whose
-- idempotency key is $1, newest first, with the list's filters and keyset
-- pagination. Names have no index (none is kept on the hot tasks table for
-- a search), so a name nothing has walks the primary key to the end.
--   $1 text        what was searched for
--   $2 taskqueue.task_status status filter (NULL: any)
--   $3 text        queue filter (NULL: any)
--   $4 text        type filter (NULL: any)
--   $5 timestamptz created at or after (NULL: no bound)
--   $6 timestamptz created before (NULL: no bound)
--   $7 uuid        cursor: only ids below this one (NULL: from the newest)
--   $8 int         page size
--   $9 text        tenant filter (NULL: any)
SELECT *
FROM taskqueue.tasks
WHERE (starts_with(name, $1) OR idempotency_key = $1)
  AND ($2::taskqueue.task_status IS NULL OR status = $2)
  AND ($3::text IS NULL OR queue = $3)
  AND ($4::text IS NULL OR type = $4)
  AND ($5::timestamptz IS NULL OR created_at >= $5)
  AND ($6::timestamptz IS NULL OR created_at < $6)
  AND ($7::uuid IS NULL OR id < $7)
  AND ($9::text IS NULL OR tenant = $9)
ORDER BY id DESC
LIMIT $8;
