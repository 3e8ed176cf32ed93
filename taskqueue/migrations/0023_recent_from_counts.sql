-- What finished in the last minute (GET /api/queues: finished_last_minute,
-- failed_last_minute) is read from queue_counts, not from the history.
-- Counting a minute of task_events joined to tasks cost one lookup per task
-- finished in that minute: it followed the throughput, 60,000 lookups a
-- call at 1,000 tasks/s, and ran on every overview.
--   queue_counts.at   when the row's statement ran. The pruner folds rows
--                     older than a minute into one per queue, and the last
--                     minute's into one per queue and second
--                     (fold_queue_counts.sql), so a read sums the rows
--                     appended since the last fold and at most a row a
--                     second besides.
-- Rows from before this migration, the folded totals among them, are older
-- than any minute: they must not count as finished just now.
-- depends: 0022_settle_in_one_pass

ALTER TABLE taskqueue.queue_counts ADD COLUMN at timestamptz NOT NULL DEFAULT '-infinity';
ALTER TABLE taskqueue.queue_counts ALTER COLUMN at SET DEFAULT now();
