-- Give a lane to queued tasks of these queues that have none (written by
-- hand with SQL, or moved to another queue, type or priority that way), so
-- that the claim sees them. Every statement of taskqueue's own that makes a
-- task queued opens its lane itself; this is the safety net, run seldom: it
-- reads every queued task of the queues.
--   $1 text[] queues
INSERT INTO taskqueue.claim_lanes (queue, type, priority, tenant)
SELECT DISTINCT t.queue, t.type, t.priority, coalesce(t.tenant, '')
FROM taskqueue.tasks t
WHERE t.status = 'queued' AND t.queue = ANY ($1::text[])
  AND NOT EXISTS (SELECT FROM taskqueue.claim_lanes l
                  WHERE (l.queue, l.type, l.priority, l.tenant)
                        = (t.queue, t.type, t.priority, coalesce(t.tenant, '')))
ON CONFLICT DO NOTHING
RETURNING queue, type, priority;
