-- The chunk a bulk action works on (cancel_tasks.sql, retry_tasks.sql,
-- delete_tasks.sql): the tasks picked by id or by filter, in id order,
-- locked until the statement's transaction ends.
--   $1 uuid[]      the tasks, by id (NULL: the ones the filter matches)
--   $2 task_status filter: status (NULL: any)
--   $3 text        filter: queue (NULL: any)
--   $4 text        filter: type (NULL: any)
--   $5 text        filter: error group, as failure_groups.sql shows it (NULL: any)
--   $6 timestamptz filter: created before (NULL: any time)
--   $7 uuid        continue after this id (NULL: from the start)
--   $8 int         how many tasks at most this time (a chunk)
--   $11 text       filter: tenant (NULL: any; a tenant's token always sets it)
matched AS MATERIALIZED (
    SELECT t.id, t.status, t.locked_by, t.attempts
    FROM taskqueue.tasks t
    WHERE ($1::uuid[] IS NULL OR t.id = ANY ($1::uuid[]))
      AND ($2::taskqueue.task_status IS NULL OR t.status = $2::taskqueue.task_status)
      AND ($3::text IS NULL OR t.queue = $3)
      AND ($4::text IS NULL OR t.type = $4)
      AND ($5::text IS NULL OR taskqueue.error_group(t.last_error) = $5)
      AND ($6::timestamptz IS NULL OR t.created_at < $6)
      AND ($7::uuid IS NULL OR t.id > $7)
      AND ($11::text IS NULL OR t.tenant = $11)
    ORDER BY t.id
    LIMIT $8
    FOR UPDATE
),
