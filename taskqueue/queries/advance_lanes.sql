-- Raise the floors of the claim lanes of these queues and types (see
-- migration 0007 and claim_tasks.sql): each to its oldest queued task at or
-- after the floor, but never closer to the present than $3 seconds, nor
-- later than $5 minus those seconds, so that a task whose INSERT began
-- within that grace and has not committed yet is not passed by (a longer
-- transaction is caught afterwards: catch_late_tasks.sql, whose start the
-- worker passes as $5: what it could not list began after it). A lane is
-- raised at most once per $4 seconds, by whichever worker comes first; one
-- being raised or lowered elsewhere is skipped.
--   $1 text[] queues
--   $2 text[] task types
--   $3 float8 grace in seconds
--   $4 float8 seconds between two raises of a lane
--   $5 timestamptz no floor past this minus the grace (NULL: the clock)
-- The statement reads the lane in its snapshot (seen) and locks it (due):
-- when the two differ, a statement that committed since (a producer that
-- lowered the floor for a task this snapshot cannot see, or another raise)
-- wins, and this one leaves the lane alone.
WITH seen AS (
    SELECT queue, type, priority, tenant, floor_at
    FROM taskqueue.claim_lanes
    WHERE queue = ANY ($1::text[]) AND type = ANY ($2::text[])
),
due AS MATERIALIZED (
    SELECT l.queue, l.type, l.priority, l.tenant, l.floor_at
    FROM taskqueue.claim_lanes l
    JOIN seen s ON (s.queue, s.type, s.priority, s.tenant)
                   = (l.queue, l.type, l.priority, l.tenant)
    WHERE l.advanced_at <= now() - make_interval(secs => $4::float8)
      AND l.floor_at IS NOT DISTINCT FROM s.floor_at
    ORDER BY l.queue, l.type, l.priority, l.tenant
    FOR UPDATE OF l SKIP LOCKED
),
raised AS (
    SELECT d.queue, d.type, d.priority, d.tenant,
           least((SELECT t.run_at
                  FROM taskqueue.tasks t
                  WHERE t.status = 'queued' AND t.queue = d.queue AND t.type = d.type
                    AND t.priority = d.priority AND coalesce(t.tenant, '') = d.tenant
                    AND t.run_at >= coalesce(d.floor_at, '-infinity')
                  ORDER BY t.run_at
                  LIMIT 1),
                 least(clock_timestamp(), $5::timestamptz)
                     - make_interval(secs => $3::float8)) AS floor_at
    FROM due d
)
UPDATE taskqueue.claim_lanes l
SET floor_at = greatest(l.floor_at, r.floor_at),
    advanced_at = now()
FROM raised r
WHERE (l.queue, l.type, l.priority, l.tenant) = (r.queue, r.type, r.priority, r.tenant)
RETURNING l.queue, l.type, l.priority, l.floor_at;
