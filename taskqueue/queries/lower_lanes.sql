-- The end of the lanes' full check (take_lane_checks.sql): each lane whose
-- floor lies above the oldest queued task the check found in it is lowered
-- to that task's run_at, so the claim reads it. A lane locked elsewhere (a
-- raise, or a producer lowering it, perhaps in a long transaction) is
-- skipped rather than waited for, so the lane keeper never stalls behind a
-- user's transaction: its task is found again at the lane's next check.
--   $1 text[] queues, $2 text[] types, $3 int[] priorities, $4 text[] tenants,
--   $5 timestamptz[] the run_at of each lane's oldest queued task
-- Returns the lanes it lowered.
WITH found AS (
    SELECT f.queue, f.type, f.priority, f.tenant, f.run_at
    FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::timestamptz[])
         AS f (queue, type, priority, tenant, run_at)
),
to_lower AS MATERIALIZED (
    SELECT l.queue, l.type, l.priority, l.tenant, f.run_at
    FROM taskqueue.claim_lanes l
    JOIN found f ON (f.queue, f.type, f.priority, f.tenant)
                    = (l.queue, l.type, l.priority, l.tenant)
    WHERE l.floor_at > f.run_at
    ORDER BY l.queue, l.type, l.priority, l.tenant
    FOR UPDATE OF l SKIP LOCKED
)
UPDATE taskqueue.claim_lanes l
SET floor_at = least(l.floor_at, d.run_at)
FROM to_lower d
WHERE (l.queue, l.type, l.priority, l.tenant) = (d.queue, d.type, d.priority, d.tenant)
RETURNING l.queue, l.type, l.priority;
