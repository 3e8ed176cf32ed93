-- Undo 0023_recent_from_counts: queue_counts rows have no time again.
ALTER TABLE taskqueue.queue_counts DROP COLUMN at;
