-- An idempotency key is its tenant's: the unique index is on (tenant, key),
-- tasks of no tenant being the tenant ''. Before, one index for all
-- tenants let one tenant take a key another tenant would use (its enqueue
-- then answered 422) and told it that the key was in use elsewhere.
-- Inserts skip a taken key (ON CONFLICT DO NOTHING) and look owners up by
-- (tenant, key) (find_tasks_by_idempotency_key.sql).
-- Built without CONCURRENTLY (a migration runs in a transaction), beside
-- the old index: writers of tasks wait while it is built (it reads the
-- whole table), readers do not; then the old one goes, briefly.

CREATE UNIQUE INDEX tasks_idempotency_key_tenant_idx
    ON taskqueue.tasks ((coalesce(tenant, '')), idempotency_key)
    WHERE idempotency_key IS NOT NULL;
DROP INDEX taskqueue.tasks_idempotency_key_idx;
ALTER INDEX taskqueue.tasks_idempotency_key_tenant_idx RENAME TO tasks_idempotency_key_idx;
