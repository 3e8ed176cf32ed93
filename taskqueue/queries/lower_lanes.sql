-- The end of the lanes' full check (take_lane_checks.sql): each lane whose
-- floor lies above the oldest queued task the check found in it is lowered
-- to that task's run_at, so the claim reads it. The lanes are locked in one
-- order, as every statement that lowers floors does, and a lane being raised
-- meanwhile is waited for and then lowered below what it was raised to.
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
    FOR UPDATE OF l
)
UPDATE taskqueue.claim_lanes l
SET floor_at = least(l.floor_at, d.run_at)
FROM to_lower d
WHERE (l.queue, l.type, l.priority, l.tenant) = (d.queue, d.type, d.priority, d.tenant)
RETURNING l.queue, l.type, l.priority;
