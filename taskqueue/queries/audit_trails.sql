-- Every task's event trail beside the task's current row, for `taskqueue
-- audit`: one row per event, ordered by task and event id (a merge of the
-- primary key and task_events_task_idx, streamed with a cursor). A task with
-- no events gives one row with NULL event columns; events whose task row is
-- gone (deleted) give rows with task_exists false.
--   $1 timestamptz only tasks created at or after this (NULL: every task);
--                  for events of deleted tasks, events at or after it
SELECT coalesce(t.id, e.task_id) AS task_id,
       e.id AS event_id,
       e.event_type,
       e.status::text AS event_status,
       e.attempt,
       e.worker_id,
       t.id IS NOT NULL AS task_exists,
       t.status::text AS task_status,
       t.attempts AS task_attempts,
       t.max_retries
FROM taskqueue.tasks t
FULL JOIN taskqueue.task_events e ON e.task_id = t.id
WHERE $1::timestamptz IS NULL
   OR t.created_at >= $1
   OR (t.id IS NULL AND e.at >= $1)
ORDER BY coalesce(t.id, e.task_id), e.id;
