-- Lock the settings rows of every queue with a concurrency limit, in the
-- order claims lock them, before recount_running.sql in the same transaction.
SELECT name FROM taskqueue.queues
WHERE concurrency_limit IS NOT NULL
ORDER BY name
FOR UPDATE;
