-- A tenant's quota and what it uses: the counter plus the deltas not folded
-- in yet (a few rows per ending statement since its last enqueue or fold).
-- A tenant without a row has no quota and is not counted: NULLs.
--   $1 text tenant
SELECT $1::text AS name, t.max_queued,
       t.unfinished + coalesce((SELECT sum(delta) FROM taskqueue.tenant_counts
                                WHERE tenant = $1), 0)::bigint AS unfinished
FROM (SELECT 1) AS one
LEFT JOIN taskqueue.tenants t ON t.name = $1;
