-- Failed tasks by queue and type, biggest first, with the newest failure's
-- error: the overview's glance at the dead-letter view. Counted from
-- tasks_failed_idx alone (an index-only scan), plus one row per group for its
-- newest error: grouping by error text (failure_groups.sql) reads every
-- failed row and runs the masking regexes on each, too slow for the overview
-- with many thousands of failures.
--   $1 int how many groups at most
WITH groups AS (
    SELECT queue, type, count(*) AS count, max(completed_at) AS last_failed_at
    FROM taskqueue.tasks
    WHERE status = 'failed'
    GROUP BY queue, type
    ORDER BY count(*) DESC, max(completed_at) DESC
    LIMIT $1
)
SELECT g.queue, g.type, g.count, g.last_failed_at, newest.id AS sample_task_id,
       taskqueue.error_group(newest.last_error) AS error
FROM groups g
CROSS JOIN LATERAL (
    SELECT t.id, t.last_error
    FROM taskqueue.tasks t
    WHERE t.status = 'failed' AND t.queue = g.queue AND t.type = g.type
    ORDER BY t.completed_at DESC
    LIMIT 1
) newest
ORDER BY g.count DESC, g.last_failed_at DESC;
