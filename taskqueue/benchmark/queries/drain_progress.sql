-- taskqueue bench: tasks finished since an event id, and the span from the
-- first task_started to the last task_succeeded among those events (DB clock).
--   $1 bigint: only events with a larger id
SELECT count(*) FILTER (WHERE event_type = 'task_succeeded') AS succeeded,
       extract(epoch FROM max(at) FILTER (WHERE event_type = 'task_succeeded')
                         - min(at) FILTER (WHERE event_type = 'task_started'))::float8 AS seconds
FROM taskqueue.task_events
WHERE id > $1;
