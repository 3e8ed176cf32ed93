-- Tasks finished per minute (succeeded, failed for good) and attempts that
-- failed with a retry left, from the events of a recent window: a range scan
-- of the BRIN index on task_events.at, so its cost follows the window, not the
-- history. The dashboard reads 24 hours once, then only the last few minutes.
--   $1 timestamptz from this time (NULL: 24 hours before now, to the minute)
SELECT date_trunc('minute', at) AS minute,
       count(*) FILTER (WHERE event_type = 'task_succeeded') AS succeeded,
       count(*) FILTER (WHERE event_type = 'task_failed') AS failed,
       count(*) FILTER (WHERE event_type = 'task_retry_scheduled') AS retried
FROM taskqueue.task_events
WHERE at >= coalesce($1::timestamptz, date_trunc('minute', now()) - interval '24 hours')
  AND event_type IN ('task_succeeded', 'task_failed', 'task_retry_scheduled')
GROUP BY 1
ORDER BY 1;
