-- Set or clear a tenant's rate limit on starts (0017_tenant_rates), log the
-- change and tell the workers: they claim through the governed claim while
-- a limited tenant has a lane in their queues, and look again on this
-- NOTIFY. Clearing deletes the row (its window with it: a limit set again
-- counts afresh); changing the limit keeps the window.
--   $1 text   tenant
--   $2 int    starts per period (NULL: no rate limit)
--   $3 float8 the period in seconds (NULL with $2)
--   $4 text   who
--   $5 jsonb  the change as asked, for the log
WITH cleared AS (
    DELETE FROM taskqueue.tenant_rates
    WHERE tenant = $1 AND $2::int IS NULL
    RETURNING tenant
),
changed AS (
    INSERT INTO taskqueue.tenant_rates AS r (tenant, rate_limit, rate_period_seconds)
    SELECT $1, $2::int, $3::float8
    WHERE $2::int IS NOT NULL
    ON CONFLICT (tenant) DO UPDATE
    SET rate_limit = excluded.rate_limit,
        rate_period_seconds = excluded.rate_period_seconds,
        updated_at = now()
    RETURNING tenant
),
logged AS (
    INSERT INTO taskqueue.operator_actions (actor, action, scope)
    VALUES ($4, 'tenant_limits', jsonb_build_object('tenant', $1::text) || $5::jsonb)
)
SELECT $1::text AS tenant,
       pg_notify('taskqueue_control', json_build_object('tenant_settings', $1::text)::text)
           AS told;
