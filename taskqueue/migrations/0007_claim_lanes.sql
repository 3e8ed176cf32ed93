-- Claim lanes: where the claim starts reading, so that it does not walk the
-- dead index entries that every claim leaves behind while vacuum is held
-- back (a long transaction, pg_dump, a replica's hot_standby_feedback).
-- depends: 0006_dashboard

-- One row per (queue, type, priority) that has ever had a task. floor_at is
-- a lower bound on the run_at of every queued task of the lane (NULL: none
-- known, read from the start); the claim reads a lane's part of
-- tasks_claim_idx from there. Kept by the statements that make tasks queued
-- (a task due before the floor lowers it, in its own statement), and raised
-- about once a second by a worker (taskqueue.worker.lanes), never past a
-- queued task and never closer than a grace period to the present, so a task
-- whose INSERT has not committed yet is not passed either.
-- The rows are narrow and rewritten about once a second; fillfactor leaves
-- room for those updates to stay HOT (no index entry per update).
CREATE TABLE taskqueue.claim_lanes (
    queue       text NOT NULL,
    type        text NOT NULL,
    priority    integer NOT NULL,
    floor_at    timestamptz,
    advanced_at timestamptz NOT NULL DEFAULT now(),
    checked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, type, priority)
) WITH (fillfactor = 50);

-- Every task that can be queued again (queued, or running and so retried,
-- released or rescued) has its lane; finished tasks get theirs again when
-- they are retried.
INSERT INTO taskqueue.claim_lanes (queue, type, priority)
SELECT DISTINCT queue, type, priority
FROM taskqueue.tasks
WHERE status IN ('queued', 'running');

-- A task is created, and by default due, when its INSERT ran, not when its
-- transaction began: a producer enqueueing late in a long transaction makes
-- a task due now, which is also what a lane's floor may assume of it.
ALTER TABLE taskqueue.tasks
    ALTER COLUMN run_at SET DEFAULT statement_timestamp(),
    ALTER COLUMN created_at SET DEFAULT statement_timestamp();
