-- Put a failed or cancelled task back in its queue, due now, with its retry
-- budget renewed (attempts back to 0; the history keeps every earlier attempt).
--   $1 uuid task id
WITH requeued AS (
    UPDATE taskqueue.tasks
    SET status = 'queued', attempts = 0, run_at = now(), completed_at = NULL,
        locked_by = NULL, locked_until = NULL
    WHERE id = $1 AND status IN ('failed', 'cancelled')
    RETURNING *
),
requeued_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, error)
    SELECT id, 'task_requeued', 'queued', 0, NULL FROM requeued
)
SELECT requeued.*, pg_notify('taskqueue', requeued.queue) AS notified FROM requeued;
