-- Cancelled tasks, from tasks_cancelled_idx.
SELECT count(*) FROM taskqueue.tasks WHERE status = 'cancelled';
