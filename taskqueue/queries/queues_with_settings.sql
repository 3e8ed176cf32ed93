-- Which of these queues the governed claim (claim_governed_tasks.sql) must
-- serve: those with settings (a pause or a limit), and those with a claim
-- lane of a tenant that has a rate limit on starts (0017_tenant_rates).
--   $1 text[] queues
SELECT name FROM taskqueue.queues WHERE name = ANY ($1::text[])
UNION
SELECT l.queue
FROM taskqueue.claim_lanes l
JOIN taskqueue.tenant_rates r ON r.tenant = l.tenant
WHERE l.queue = ANY ($1::text[]);
