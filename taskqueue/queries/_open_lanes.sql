-- The end of every statement that makes tasks queued with a run_at of its
-- choosing (enqueue, schedule firing, retry by hand): each task's claim lane
-- exists, and a task due before its lane's floor lowers the floor, so the
-- claim reads it. Expects a CTE lane_rows (queue, type, priority, run_at, tenant) of
-- those tasks, and ends without a comma. A lane is also a tenant's ('' for
-- tasks of no tenant): lane_rows has a tenant column, coalesced to ''.
-- A lane this statement's snapshot already has is not inserted again: the
-- conflict check of ON CONFLICT waits for any uncommitted change to the
-- existing row, and workers update it twice a second (advance_lanes.sql,
-- take_lane_checks.sql), so a producer would wait on every raise. Creating a lane
-- thus waits only for another uncommitted creation of the same lane;
-- lowering a floor (a task due in the past) locks the lane rows, in one
-- order for every statement.
lanes_opened AS (
    INSERT INTO taskqueue.claim_lanes (queue, type, priority, tenant)
    SELECT r.queue, r.type, r.priority, r.tenant
    FROM (SELECT DISTINCT queue, type, priority, coalesce(tenant, '') AS tenant
          FROM lane_rows) AS r
    WHERE NOT EXISTS (SELECT FROM taskqueue.claim_lanes l
                      WHERE (l.queue, l.type, l.priority, l.tenant)
                            = (r.queue, r.type, r.priority, r.tenant))
    ON CONFLICT DO NOTHING
),
lanes_to_lower AS MATERIALIZED (
    SELECT l.queue, l.type, l.priority, l.tenant, x.run_at
    FROM taskqueue.claim_lanes l
    JOIN (SELECT queue, type, priority, coalesce(tenant, '') AS tenant, min(run_at) AS run_at
          FROM lane_rows GROUP BY queue, type, priority, coalesce(tenant, '')) AS x
      ON (x.queue, x.type, x.priority, x.tenant) = (l.queue, l.type, l.priority, l.tenant)
    WHERE l.floor_at > x.run_at
    ORDER BY l.queue, l.type, l.priority, l.tenant
    FOR UPDATE OF l
),
lanes_lowered AS (
    UPDATE taskqueue.claim_lanes l
    SET floor_at = least(l.floor_at, d.run_at)
    FROM lanes_to_lower d
    WHERE (l.queue, l.type, l.priority, l.tenant) = (d.queue, d.type, d.priority, d.tenant)
)
