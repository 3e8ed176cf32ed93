-- The read of the lanes' full check (take_lane_checks.sql): the run_at of
-- each lane's oldest queued task, from the lane's very start, whatever its
-- floor. It walks every index entry vacuum has not removed yet, and locks
-- nothing, so however long it takes no producer, claim or raise waits on it.
--   $1 text[] queues, $2 text[] types, $3 int[] priorities, $4 text[] tenants
--      ('' for tasks of no tenant): the lanes, one per position
-- Returns each lane with the run_at of its oldest queued task (NULL: none).
SELECT k.queue, k.type, k.priority, k.tenant,
       (SELECT t.run_at
        FROM taskqueue.tasks t
        WHERE t.status = 'queued' AND t.queue = k.queue AND t.type = k.type
          AND t.priority = k.priority AND coalesce(t.tenant, '') = k.tenant
        ORDER BY t.run_at
        LIMIT 1) AS run_at
FROM unnest($1::text[], $2::text[], $3::int[], $4::text[]) AS k (queue, type, priority, tenant);
