-- The dashboard's overview counts cancelled tasks from this index instead of
-- scanning the table. Being partial, it holds only cancelled rows: enqueue,
-- claim and complete never write to it (they only check its predicate on
-- updates that change status, which are never HOT anyway: status is in the
-- predicates of tasks_claim_idx and tasks_failed_idx).
-- depends: 0004_schedules 0003_operations

CREATE INDEX tasks_cancelled_idx ON taskqueue.tasks (queue) WHERE status = 'cancelled';
