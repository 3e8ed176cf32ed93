-- taskqueue bench: the newest event id (0 when there is none).
SELECT coalesce(max(id), 0) FROM taskqueue.task_events;
