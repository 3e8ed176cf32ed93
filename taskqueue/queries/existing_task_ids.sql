-- Which of these task ids exist (the parents a new task names in depends_on).
--   $1 uuid[] task ids
SELECT id FROM taskqueue.tasks WHERE id = ANY ($1::uuid[]);
