-- taskqueue bench (pooling): tasks not (yet) succeeded.
SELECT count(*) FROM taskqueue.tasks WHERE status <> 'succeeded';
