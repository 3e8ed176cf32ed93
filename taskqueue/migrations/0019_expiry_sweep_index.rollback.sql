-- Undo 0019_expiry_sweep_index: the expiry index of 0011_expiry_callbacks.
DROP INDEX taskqueue.tasks_expiry_idx;
CREATE INDEX tasks_expiry_idx ON taskqueue.tasks (expires_at)
    WHERE status = 'queued' AND expires_at IS NOT NULL;
