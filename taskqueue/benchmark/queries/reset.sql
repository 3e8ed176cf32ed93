-- taskqueue bench: empty the queue between measurements (bench database only).
TRUNCATE taskqueue.tasks, taskqueue.task_events, taskqueue.task_dependencies,
         taskqueue.workflows;
