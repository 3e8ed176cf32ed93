-- Undo 0006_dashboard: the overview counts cancelled tasks by scanning again.
DROP INDEX IF EXISTS taskqueue.tasks_cancelled_idx;
