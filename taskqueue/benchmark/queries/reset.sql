-- taskqueue bench: empty the queue between measurements (bench database only).
-- Workers may be running meanwhile (an idle fleet claims, and its lane
-- keepers read task_events before tasks). TRUNCATE takes its tables' locks
-- one after another, so it could wait for one while a worker statement
-- holds it and waits for one the TRUNCATE already has: a deadlock, whose
-- victim may be the worker's statement. Waiting at most 200 ms for each lock
-- (less than deadlock_timeout, 1 s by default), the TRUNCATE gives up
-- first, and bench_store.reset tries again.
SET LOCAL lock_timeout = '200ms';
TRUNCATE taskqueue.tasks, taskqueue.task_events, taskqueue.task_dependencies,
         taskqueue.workflows;
