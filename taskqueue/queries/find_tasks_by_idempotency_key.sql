-- The tasks that already own these idempotency keys, each key in its
-- tenant (0027_idempotency_per_tenant: '' for tasks of no tenant).
--   $1 text[] idempotency keys, $2 text[] their tenants ('' for none)
SELECT t.*
FROM unnest($1::text[], $2::text[]) AS k(key, tenant)
JOIN taskqueue.tasks t
  ON t.idempotency_key = k.key AND coalesce(t.tenant, '') = k.tenant;
