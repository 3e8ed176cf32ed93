-- One batch of pruning: finished tasks past their queue's retention are
-- deleted, each with a task_deleted event ({"reason": "retention"}), in one
-- statement inside taskqueue.prune_tasks() (0009_retention.sql says how it
-- finds them; it is SECURITY DEFINER because a worker may delete no task
-- otherwise). Rows are taken FOR UPDATE SKIP LOCKED: two pruners never
-- delete the same one, and nothing unfinished is touched.
--   $1 timestamptz the time retention is judged by (NULL: now(); tests pin it)
--   $2 int         at most this many rows per part (succeeded walked, failed, cancelled)
--   $3 interval    the succeeded retention whose tasks this batch walks for
--   $4 interval    default retention of succeeded tasks
--   $5 interval    of failed tasks
--   $6 interval    of cancelled tasks
--   $7 interval    how long after its creation a task is expected to finish
--   $8 interval    how often the walk starts again from the oldest id
--   $9 text        the pruning worker's id, kept in the events
-- Returns how many tasks were deleted, how many ids the walk read, and how
-- many failed and cancelled tasks were due: a part that reached $2 has more.
SELECT deleted, walked, failed, cancelled
FROM taskqueue.prune_tasks($1::timestamptz, $2::int, $3::interval, $4::interval, $5::interval,
                           $6::interval, $7::interval, $8::interval, $9::text);
