-- How many events wait in the history's default partition: rows whose day
-- had no partition when they were written. Partition maintenance moves them
-- to their day; more than zero for long means it is not running.
SELECT estimated_rows
FROM taskqueue.event_partitions()
WHERE starts IS NULL;
