-- One task by id.
--   $1 uuid task id
SELECT * FROM taskqueue.tasks WHERE id = $1;
