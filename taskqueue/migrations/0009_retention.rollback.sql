-- Undo 0009_retention: no built-in pruning, overviews count rows again.
DROP FUNCTION IF EXISTS taskqueue.prune_tasks(timestamptz, integer, interval, interval, interval,
                                               interval, interval, interval, text);
DROP INDEX IF EXISTS taskqueue.tasks_unhappy_finished_idx;
DROP TABLE IF EXISTS taskqueue.prune_marks;
DROP TABLE IF EXISTS taskqueue.queue_counts;
DROP TABLE IF EXISTS taskqueue.queue_retention;
