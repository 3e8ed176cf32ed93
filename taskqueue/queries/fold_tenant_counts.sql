-- Fold tenants' counter deltas into their rows (taskqueue.fold_tenant_counts,
-- 0013_tenants), for the pruner after fold_queue_counts.sql.
--   $1 int at most this many tenants
-- Returns how many delta rows were folded away.
SELECT taskqueue.fold_tenant_counts($1) AS folded;
