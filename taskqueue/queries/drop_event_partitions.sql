-- Event retention: detach and drop every daily partition of the history whose
-- day ended at or before $1 (never today's), with its rows; no DELETE. Returns
-- what it dropped, oldest first.
--   $1 timestamptz the cut-off: events before it may go
SELECT partition_name, starts, ends, estimated_rows
FROM taskqueue.drop_event_partitions($1::timestamptz);
