-- A task that waits for other tasks (its parents) is `waiting`: outside the
-- claim path (tasks_claim_idx holds only queued rows), until the statement
-- that finishes its last parent makes it queued. Its own migration because a
-- new enum value cannot be used in the transaction that adds it, and
-- 0010_workflows uses it in an index predicate and a function.
-- depends: 0009_retention

ALTER TYPE taskqueue.task_status ADD VALUE IF NOT EXISTS 'waiting' BEFORE 'queued';
