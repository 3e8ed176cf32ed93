-- Remove a queue's retention row once it overrides nothing: the queue keeps
-- the defaults (TASKQUEUE_RETAIN_*) again.
--   $1 text queue
DELETE FROM taskqueue.queue_retention
WHERE queue = $1
  AND retain_succeeded IS NULL AND retain_failed IS NULL AND retain_cancelled IS NULL;
