-- Every queue that has a claim lane: the queues a task was ever enqueued to
-- (taskqueue.testing drains them all).
SELECT DISTINCT queue FROM taskqueue.claim_lanes ORDER BY queue;
