-- Fairness phase: milliseconds from each small tenant's task being enqueued
-- (created_at) to its start, by the database's clock.
--   $1 text the flooding tenant, left out
SELECT extract(epoch FROM started_at - created_at)::float8 * 1000 AS ms
FROM taskqueue.tasks
WHERE tenant IS NOT NULL AND tenant <> $1 AND started_at IS NOT NULL;
