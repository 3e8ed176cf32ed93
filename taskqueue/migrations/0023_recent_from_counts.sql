-- What finished in the last minute (GET /api/queues: finished_last_minute,
-- failed_last_minute) is read from queue_counts, not from the history.
-- Counting a minute of task_events joined to tasks cost one lookup per task
-- finished in that minute: it followed the throughput, 60,000 lookups a
-- call at 1,000 tasks/s, and ran on every overview.
--   queue_counts.at   when the row's statement ran. The pruner folds only
--                     rows older than two minutes (fold_queue_counts.sql),
--                     so the last minute's rows are the ones the finishing
--                     statements appended, each with its time.
-- depends: 0022_settle_in_one_pass

ALTER TABLE taskqueue.queue_counts ADD COLUMN at timestamptz NOT NULL DEFAULT now();
