-- Tasks finished per minute (succeeded, failed for good) and attempts that
-- failed with a retry left, from the events of a time window: a range scan
-- of the BRIN index on task_events.at, so its cost follows the window, not
-- the history. The dashboard reads the last hour, then the rest of the day
-- in the background, then only the last few minutes on each refresh.
--   $1 timestamptz from this time
--   $2 timestamptz until this time (NULL: now)
SELECT date_trunc('minute', at) AS minute,
       count(*) FILTER (WHERE event_type = 'task_succeeded') AS succeeded,
       count(*) FILTER (WHERE event_type = 'task_failed') AS failed,
       count(*) FILTER (WHERE event_type = 'task_retry_scheduled') AS retried
FROM taskqueue.task_events
WHERE at >= $1
  AND ($2::timestamptz IS NULL OR at < $2)
  AND event_type IN ('task_succeeded', 'task_failed', 'task_retry_scheduled')
GROUP BY 1
ORDER BY 1;
