-- Make the history's daily partitions that are missing: today's (UTC) and the
-- next $1 days', plus one for each day the default partition holds rows of
-- (moving them in). Safe to run from every worker at once (see migration
-- 0008); returns the names of the partitions it made.
--   $1 int         days ahead of today (0-366)
--   $2 timestamptz what "today" is (NULL: now)
SELECT made AS partition_name
FROM taskqueue.ensure_event_partitions($1::int, $2::timestamptz) AS made;
