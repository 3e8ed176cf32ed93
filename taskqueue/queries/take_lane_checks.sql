-- The safety net under the floors (see advance_lanes.sql): about every $3
-- seconds each lane of these queues and types is read from its very start,
-- and a queued task found below the floor lowers it. Such a task committed
-- more than the grace after its INSERT began (a producer's long
-- transaction), or was written by hand with SQL. That read walks what
-- vacuum has not removed yet, so it runs seldom, off the claim path, and in
-- three statements, so that nothing waits on a lane while it is read:
-- this one takes the lanes due for a check (a lane being raised or lowered
-- elsewhere is skipped) and marks them checked, so other workers leave them
-- be; find_oldest_queued_tasks.sql then reads them with no lock held, and
-- lower_lanes.sql lowers a floor that passed a queued task. A check that
-- fails between the steps (a worker killed mid-read) leaves its lanes to
-- their next turn, $3 seconds on.
--   $1 text[] queues
--   $2 text[] task types
--   $3 float8 seconds between two checks of a lane
WITH due AS MATERIALIZED (
    SELECT l.queue, l.type, l.priority, l.tenant
    FROM taskqueue.claim_lanes l
    WHERE l.queue = ANY ($1::text[]) AND l.type = ANY ($2::text[])
      AND l.checked_at <= now() - make_interval(secs => $3::float8)
    ORDER BY l.queue, l.type, l.priority, l.tenant
    FOR UPDATE SKIP LOCKED
)
UPDATE taskqueue.claim_lanes l
SET checked_at = now()
FROM due d
WHERE (l.queue, l.type, l.priority, l.tenant) = (d.queue, d.type, d.priority, d.tenant)
RETURNING l.queue, l.type, l.priority, l.tenant;
