-- The types of queued tasks in one queue that are not in a list (the
-- types a worker can run), read from the claim lanes: a lane of such a type
-- that has a queued task at or above its floor. Nothing claims those lanes,
-- so their floors stay put and this reads a few index entries per lane,
-- however deep the backlog and whatever vacuum has not removed yet. (A
-- task with no lane yet gets one from the lane keeper's safety net.)
--   $1 text   queue
--   $2 text[] types the asking worker has handlers for
--   $3 int    how many types at most
SELECT DISTINCT l.type
FROM taskqueue.claim_lanes l
-- A LIMIT, not EXISTS: the planner may turn EXISTS into a join that reads
-- the queue's whole range of the index.
CROSS JOIN LATERAL (
    SELECT 1
    FROM taskqueue.tasks t
    WHERE t.status = 'queued' AND t.queue = l.queue AND t.type = l.type
      AND t.priority = l.priority AND coalesce(t.tenant, '') = l.tenant
      AND t.run_at >= coalesce(l.floor_at, '-infinity')
    ORDER BY t.run_at
    LIMIT 1
) AS queued
WHERE l.queue = $1 AND l.type <> ALL ($2::text[])
ORDER BY l.type
LIMIT $3;
