-- taskqueue bench: rows in taskqueue.tasks.
SELECT count(*) FROM taskqueue.tasks;
