-- Remove a queue's settings row once it neither pauses nor limits anything,
-- so that its workers go back to the plain claim (claim_tasks.sql). Its
-- running count and rate window go with it: setting a limit again counts
-- afresh.
--   $1 text queue
DELETE FROM taskqueue.queues
WHERE name = $1 AND NOT paused AND concurrency_limit IS NULL AND rate_limit IS NULL
  AND per_key_concurrency IS NULL;
