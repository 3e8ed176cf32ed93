-- Tasks whose latest finish was a cancel, kept or pruned since (queue_counts).
SELECT coalesce(sum(cancelled), 0)::bigint FROM taskqueue.queue_counts;
