-- Undo 0003_operations: queue settings, the worker registry and the operator
-- log are dropped with their rows.
DROP INDEX IF EXISTS taskqueue.tasks_failed_idx;
DROP FUNCTION IF EXISTS taskqueue.error_group(text);
DROP TABLE IF EXISTS taskqueue.operator_actions;
DROP TABLE IF EXISTS taskqueue.workers;
DROP TABLE IF EXISTS taskqueue.queues;
