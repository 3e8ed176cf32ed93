-- Count the running tasks of limited queues afresh. Run in a transaction
-- after their rows are locked (set_queue_limits.sql, or
-- lock_limited_queues.sql): no claim of these queues can then be in flight,
-- so the count is exact. Walks the lease index (running tasks only).
--   $1 text[] queues (NULL: every queue with a concurrency limit)
UPDATE taskqueue.queues s
SET running = (SELECT count(*) FROM taskqueue.tasks t
               WHERE t.locked_until IS NOT NULL AND t.status = 'running'
                 AND t.queue = s.name)
WHERE ($1::text[] IS NULL OR s.name = ANY ($1::text[]))
  AND s.concurrency_limit IS NOT NULL
RETURNING s.name, s.running;
