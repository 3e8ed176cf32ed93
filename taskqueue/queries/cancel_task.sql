-- Cancel a task that is still waiting; running and finished tasks are left
-- alone (zero rows: the caller reports why).
--   $1 uuid task id
WITH cancelled AS (
    UPDATE taskqueue.tasks
    SET status = 'cancelled', completed_at = now()
    WHERE id = $1 AND status = 'queued'
    RETURNING *
),
cancelled_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt)
    SELECT id, 'task_cancelled', 'cancelled', attempts FROM cancelled
)
SELECT * FROM cancelled;
