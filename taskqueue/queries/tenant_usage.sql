-- A tenant's quota and what it uses: with a row, the counter plus the
-- deltas not folded in yet (a few rows per ending statement since its last
-- enqueue); without one (no quota, so not counted), its unfinished tasks
-- counted (the tenant's index; for a page, never for an enqueue).
--   $1 text tenant
SELECT $1::text AS name, t.max_queued,
       CASE WHEN t.name IS NOT NULL
            THEN t.unfinished + coalesce((SELECT sum(delta) FROM taskqueue.tenant_counts
                                          WHERE tenant = $1), 0)
            ELSE (SELECT count(*) FROM taskqueue.tasks
                  WHERE tenant = $1 AND status IN ('waiting', 'queued', 'running'))
       END::bigint AS unfinished,
       t.name IS NOT NULL AS counted
FROM (SELECT 1) AS one
LEFT JOIN taskqueue.tenants t ON t.name = $1;
