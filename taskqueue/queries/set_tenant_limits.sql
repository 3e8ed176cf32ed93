-- Set or clear a tenant's quota (creating its row if it has none) and log
-- the change. A new row starts its counter at the tenant's unfinished tasks
-- now (one count, at configuration, never per enqueue), and drops the deltas
-- this count already includes; from then on the statements that enqueue and
-- end its tasks keep the counter (0013_tenants).
--   $1 text  tenant
--   $2 int   max_queued (NULL: no limit)
--   $3 text  who
--   $4 jsonb the change as asked, for the log
WITH fresh AS MATERIALIZED (
    SELECT count(*) AS n
    FROM taskqueue.tasks
    WHERE tenant = $1 AND status IN ('waiting', 'queued', 'running')
      AND NOT EXISTS (SELECT 1 FROM taskqueue.tenants WHERE name = $1)
),
stale_deltas AS (
    DELETE FROM taskqueue.tenant_counts
    WHERE tenant = $1 AND NOT EXISTS (SELECT 1 FROM taskqueue.tenants WHERE name = $1)
),
changed AS (
    INSERT INTO taskqueue.tenants AS t (name, max_queued, unfinished)
    SELECT $1, $2::int, n FROM fresh
    ON CONFLICT (name) DO UPDATE SET max_queued = $2::int, updated_at = now()
    RETURNING name
),
logged AS (
    INSERT INTO taskqueue.operator_actions (actor, action, scope)
    SELECT $3, 'tenant_limits', jsonb_build_object('tenant', name) || $4::jsonb FROM changed
)
SELECT name FROM changed;
