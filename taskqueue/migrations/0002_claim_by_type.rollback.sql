-- Undo 0002_claim_by_type: the claim index walks a queue in claim order again.
DROP INDEX taskqueue.tasks_claim_idx;

CREATE INDEX tasks_claim_idx ON taskqueue.tasks (queue, priority DESC, run_at, id)
    WHERE status = 'queued';
