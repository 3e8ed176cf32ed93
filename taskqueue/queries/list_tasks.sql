-- Tasks newest first, with optional filters and keyset pagination on id
-- (UUIDv7, so id order is creation order and the cursor stays stable while
-- new tasks arrive: they sort before it).
--   $1 taskqueue.task_status status filter (NULL: any)
--   $2 text        queue filter (NULL: any)
--   $3 text        type filter (NULL: any)
--   $4 timestamptz created at or after (NULL: no bound)
--   $5 timestamptz created before (NULL: no bound)
--   $6 uuid        cursor: only ids below this one (NULL: from the newest)
--   $7 int         page size
--   $8 text        schedule filter: tasks fired by this schedule (NULL: any)
--   $9 text        tenant filter (NULL: any)
SELECT *
FROM taskqueue.tasks
WHERE ($1::taskqueue.task_status IS NULL OR status = $1)
  AND ($2::text IS NULL OR queue = $2)
  AND ($3::text IS NULL OR type = $3)
  AND ($4::timestamptz IS NULL OR created_at >= $4)
  AND ($5::timestamptz IS NULL OR created_at < $5)
  AND ($6::uuid IS NULL OR id < $6)
  AND ($8::text IS NULL OR schedule = $8)
  AND ($9::text IS NULL OR tenant = $9)
ORDER BY id DESC
LIMIT $7;
