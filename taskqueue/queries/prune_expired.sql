-- One batch of pruning expired tasks: those past their queue's
-- retain_cancelled (else the default) are deleted, oldest first, each with
-- a task_deleted event, inside taskqueue.prune_expired() (SECURITY DEFINER,
-- 0011_expiry_callbacks.sql), like prune_tasks.sql.
--   $1 timestamptz the time retention is judged by (NULL: now(); tests pin it)
--   $2 int         at most this many rows
--   $3 interval    default retention (TASKQUEUE_RETAIN_CANCELLED)
--   $4 text        the pruning worker's id, kept in the events
SELECT taskqueue.prune_expired($1::timestamptz, $2::int, $3::interval, $4::text);
