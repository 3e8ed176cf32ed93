-- What finished (succeeded, failed or cancelled) and what failed in the last
-- minute, per queue, for GET /api/queues; read from the history, which
-- queue_states.sql leaves alone.
--   $1 text one queue (NULL: all)
SELECT t.queue,
       count(*) AS finished,
       count(*) FILTER (WHERE e.event_type = 'task_failed') AS failed
FROM taskqueue.task_events e
JOIN taskqueue.tasks t ON t.id = e.task_id
WHERE e.at > now() - interval '1 minute'
  AND e.event_type IN ('task_succeeded', 'task_failed', 'task_cancelled')
  AND ($1::text IS NULL OR t.queue = $1)
GROUP BY t.queue;
