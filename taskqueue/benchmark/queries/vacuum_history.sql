-- taskqueue bench (history): after the load, leave both tables as autovacuum
-- would have left them by the time a real history had grown this large
-- (visibility map set, statistics current).
VACUUM (ANALYZE) taskqueue.tasks, taskqueue.task_events;
