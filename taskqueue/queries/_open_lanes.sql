-- The end of every statement that makes tasks queued with a run_at of its
-- choosing (enqueue, schedule firing, retry by hand): each task's claim lane
-- exists, and a task due before its lane's floor lowers the floor, so the
-- claim reads it. Expects a CTE lane_rows (queue, type, priority, run_at) of
-- those tasks, and ends without a comma.
-- Creating a lane waits only for another uncommitted creation of the same
-- lane; lowering a floor (a task due in the past) locks the lane rows, in
-- one order for every statement.
lanes_opened AS (
    INSERT INTO taskqueue.claim_lanes (queue, type, priority)
    SELECT DISTINCT queue, type, priority FROM lane_rows
    ON CONFLICT DO NOTHING
),
lanes_to_lower AS MATERIALIZED (
    SELECT l.queue, l.type, l.priority, x.run_at
    FROM taskqueue.claim_lanes l
    JOIN (SELECT queue, type, priority, min(run_at) AS run_at
          FROM lane_rows GROUP BY queue, type, priority) AS x
      ON (x.queue, x.type, x.priority) = (l.queue, l.type, l.priority)
    WHERE l.floor_at > x.run_at
    ORDER BY l.queue, l.type, l.priority
    FOR UPDATE OF l
),
lanes_lowered AS (
    UPDATE taskqueue.claim_lanes l
    SET floor_at = least(l.floor_at, d.run_at)
    FROM lanes_to_lower d
    WHERE (l.queue, l.type, l.priority) = (d.queue, d.type, d.priority)
)
