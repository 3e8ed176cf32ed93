-- The tasks that already own these idempotency keys.
--   $1 text[] idempotency keys
SELECT * FROM taskqueue.tasks WHERE idempotency_key = ANY($1::text[]);
