-- taskqueue bench (crash): tasks running under a worker process, by the pid
-- in its worker id (host:pid:suffix).
--   $1 text  ':<pid>:'
SELECT count(*) FROM taskqueue.tasks
WHERE status = 'running' AND strpos(locked_by, $1) > 0;
