-- Undo 0027_idempotency_per_tenant: one idempotency key space for all
-- tenants again. Refused while two tenants' tasks share a key: delete or
-- re-key one of them first.

DO $$
BEGIN
    IF EXISTS (SELECT FROM taskqueue.tasks WHERE idempotency_key IS NOT NULL
               GROUP BY idempotency_key HAVING count(*) > 1) THEN
        RAISE EXCEPTION 'tasks of different tenants share an idempotency key';
    END IF;
END
$$;
DROP INDEX taskqueue.tasks_idempotency_key_idx;
CREATE UNIQUE INDEX tasks_idempotency_key_idx ON taskqueue.tasks (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
