-- The succeeded retentions queues set for themselves (queue_retention), each
-- once: the pruner walks for each of them and for the default.
SELECT DISTINCT retain_succeeded AS retention
FROM taskqueue.queue_retention
WHERE retain_succeeded IS NOT NULL;
