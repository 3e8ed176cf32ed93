-- The end of every statement that makes tasks queued with a run_at of its
-- choosing (enqueue, schedule firing, retry by hand): each task's claim lane
-- exists, and a task due before its lane's floor lowers the floor, so the
-- claim reads it. Expects a CTE lane_rows (queue, type, priority, run_at,
-- tenant) of those tasks, and ends without a comma. A lane is also a
-- tenant's ('' for tasks of no tenant): lane_rows has a tenant column,
-- coalesced to ''.
-- Each lane is read once, in this statement's snapshot (lane_keys), and a
-- lane the snapshot has is not inserted again: the conflict check of ON
-- CONFLICT waits for any uncommitted change to the existing row, and workers
-- update it twice a second (advance_lanes.sql) and at each check
-- (take_lane_checks.sql), so a producer would wait on every raise. Creating
-- a lane thus waits only for another uncommitted creation of the same lane.
-- Lowering a floor (a task due before it, as the snapshot saw it: decided
-- from lane_keys, so the usual statement, with nothing to lower, reads no
-- lane again) locks the lane rows, in one order for every statement, and
-- tests the floor again once locked.
lane_keys AS MATERIALIZED (
    SELECT x.queue, x.type, x.priority, x.tenant, x.run_at, l.floor_at,
           l.queue IS NOT NULL AS known
    FROM (SELECT queue, type, priority, coalesce(tenant, '') AS tenant, min(run_at) AS run_at
          FROM lane_rows GROUP BY queue, type, priority, coalesce(tenant, '')) AS x
    LEFT JOIN taskqueue.claim_lanes l
      ON (l.queue, l.type, l.priority, l.tenant) = (x.queue, x.type, x.priority, x.tenant)
),
lanes_opened AS (
    INSERT INTO taskqueue.claim_lanes (queue, type, priority, tenant)
    SELECT queue, type, priority, tenant FROM lane_keys WHERE NOT known
    ON CONFLICT DO NOTHING
),
lanes_to_lower AS MATERIALIZED (
    SELECT l.queue, l.type, l.priority, l.tenant, k.run_at
    FROM lane_keys k
    JOIN taskqueue.claim_lanes l
      ON (l.queue, l.type, l.priority, l.tenant) = (k.queue, k.type, k.priority, k.tenant)
    WHERE k.floor_at > k.run_at AND l.floor_at > k.run_at
    ORDER BY l.queue, l.type, l.priority, l.tenant
    FOR UPDATE OF l
),
lanes_lowered AS (
    UPDATE taskqueue.claim_lanes l
    SET floor_at = least(l.floor_at, d.run_at)
    FROM lanes_to_lower d
    WHERE (l.queue, l.type, l.priority, l.tenant) = (d.queue, d.type, d.priority, d.tenant)
)
