-- Undo 0024_paced_vacuum_of_tasks: autovacuum of tasks unpaced again.
ALTER TABLE taskqueue.tasks SET (autovacuum_vacuum_cost_delay = 0);
