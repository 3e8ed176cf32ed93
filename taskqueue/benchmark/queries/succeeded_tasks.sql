-- taskqueue bench (crash): tasks succeeded so far.
SELECT count(*) FROM taskqueue.tasks WHERE status = 'succeeded';
