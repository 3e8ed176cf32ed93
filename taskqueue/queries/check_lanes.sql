-- The safety net under the floors (see advance_lanes.sql): about every $3
-- seconds each lane of these queues and types is read from its very start,
-- and a queued task found below the floor lowers it. Such a task committed
-- more than the grace after its INSERT began (a producer's long
-- transaction), or was written by hand with SQL. This read walks what
-- vacuum has not removed yet, so it runs seldom and off the claim path.
--   $1 text[] queues
--   $2 text[] task types
--   $3 float8 seconds between two checks of a lane
-- Returns the lanes whose floor it lowered.
WITH due AS MATERIALIZED (
    SELECT l.queue, l.type, l.priority, l.tenant, l.floor_at
    FROM taskqueue.claim_lanes l
    WHERE l.queue = ANY ($1::text[]) AND l.type = ANY ($2::text[])
      AND l.checked_at <= now() - make_interval(secs => $3::float8)
    ORDER BY l.queue, l.type, l.priority, l.tenant
    FOR UPDATE SKIP LOCKED
),
lowest AS (
    SELECT d.queue, d.type, d.priority, d.tenant,
           (SELECT t.run_at
            FROM taskqueue.tasks t
            WHERE t.status = 'queued' AND t.queue = d.queue AND t.type = d.type
              AND t.priority = d.priority AND coalesce(t.tenant, '') = d.tenant
            ORDER BY t.run_at
            LIMIT 1) AS run_at
    FROM due d
)
UPDATE taskqueue.claim_lanes l
SET checked_at = now(),
    floor_at = CASE WHEN w.run_at < l.floor_at THEN w.run_at ELSE l.floor_at END
FROM lowest w
WHERE (l.queue, l.type, l.priority, l.tenant) = (w.queue, w.type, w.priority, w.tenant)
RETURNING l.queue, l.type, l.priority, l.floor_at = w.run_at AS lowered;
