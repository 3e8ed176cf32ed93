-- Undo 0010_workflows: waiting tasks are cancelled (nothing would release
-- them), then the dependency columns, tables and function go.
UPDATE taskqueue.tasks SET status = 'cancelled', completed_at = now() WHERE status = 'waiting';
DROP FUNCTION IF EXISTS taskqueue.lock_parents(uuid[], integer[]);
DROP FUNCTION IF EXISTS taskqueue.reconcile_waiting(integer, text);
DROP FUNCTION IF EXISTS taskqueue.settle_children(uuid[], boolean[], text);
DROP FUNCTION IF EXISTS taskqueue.cascade_ended(uuid[]);
DROP INDEX IF EXISTS taskqueue.tasks_waiting_idx;
DROP INDEX IF EXISTS taskqueue.tasks_workflow_idx;
DROP TABLE IF EXISTS taskqueue.task_dependencies;
ALTER TABLE taskqueue.tasks
    DROP CONSTRAINT IF EXISTS tasks_waiting_on_not_negative,
    DROP COLUMN IF EXISTS workflow_ref,
    DROP COLUMN IF EXISTS workflow_id,
    DROP COLUMN IF EXISTS children,
    DROP COLUMN IF EXISTS parents,
    DROP COLUMN IF EXISTS waiting_on;
DROP TABLE IF EXISTS taskqueue.workflows;
