-- The newest event id (0 when there is none): where a live stream starts.
SELECT coalesce(max(id), 0) FROM taskqueue.task_events;
