-- The types of queued tasks in one queue that are not in a list (the
-- types a worker can run), found with a loose index scan: one descent of
-- tasks_claim_idx (queue, type, ...) per distinct type, however deep the
-- backlog of each.
--   $1 text   queue
--   $2 text[] types the asking worker has handlers for
--   $3 int    how many types at most
WITH RECURSIVE kinds(type) AS (
    (SELECT t.type FROM taskqueue.tasks t
     WHERE t.status = 'queued' AND t.queue = $1
     ORDER BY t.type LIMIT 1)
    UNION ALL
    SELECT (SELECT t.type FROM taskqueue.tasks t
            WHERE t.status = 'queued' AND t.queue = $1 AND t.type > k.type
            ORDER BY t.type LIMIT 1)
    FROM kinds k
    WHERE k.type IS NOT NULL
)
SELECT type FROM kinds
WHERE type IS NOT NULL AND type <> ALL ($2::text[])
LIMIT $3;
