-- Undo 0017_tenant_rates: tenants have no rate limit on starts.
DROP TABLE IF EXISTS taskqueue.tenant_rates;
