-- Undo 0005_traceparent.sql.
ALTER TABLE taskqueue.tasks DROP COLUMN IF EXISTS traceparent;
