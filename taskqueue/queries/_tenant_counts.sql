-- The unfinished-task counters of tenants that have a row in
-- taskqueue.tenants (a quota), kept by the statements that end tasks or put
-- finished ones back (0013_tenants): one appended delta per tenant, never
-- an update of the tenant's row, so ending tasks takes no lock an enqueue
-- holds (the tenant's next enqueue folds the deltas in: admit_tasks()).
-- Expects a CTE tenant_changes (tenant, delta) and ends without a comma.
-- Tenantless tasks are dropped first: no lookup, no row for them.
-- (_complete_outcomes.sql, itself a fragment, holds a copy.)
tenants_counted AS (
    INSERT INTO taskqueue.tenant_counts (tenant, delta)
    SELECT c.tenant, sum(c.delta)
    FROM tenant_changes c
    WHERE c.tenant IS NOT NULL
      AND EXISTS (SELECT 1 FROM taskqueue.tenants n WHERE n.name = c.tenant)
    GROUP BY c.tenant
)
