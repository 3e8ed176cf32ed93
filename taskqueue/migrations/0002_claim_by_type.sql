-- Workers claim only the task types they have handlers for: the claim index
-- leads with (queue, type), so that a worker walks just its own types and a
-- backlog of types it cannot run costs it nothing (no rows to skip past).
-- depends: 0001_initial

DROP INDEX taskqueue.tasks_claim_idx;

CREATE INDEX tasks_claim_idx ON taskqueue.tasks (queue, type, priority DESC, run_at, id)
    WHERE status = 'queued';
