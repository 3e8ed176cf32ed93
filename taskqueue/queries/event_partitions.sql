-- The history's partitions, the default partition first: name, day range
-- (NULL for the default partition) and rows (the planner's estimate for a
-- day, NULL until it is first analyzed; an exact count for the default
-- partition). Reads the catalog, and counts only the default partition.
SELECT partition_name, starts, ends, estimated_rows
FROM taskqueue.event_partitions();
