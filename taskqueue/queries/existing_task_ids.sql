-- Which of these task ids exist (the parents a new task names in depends_on).
--   $1 uuid[] task ids
--   $2 text   only tasks of this tenant (NULL: any): a tenant's task may wait
--             for its own tasks alone, and would read their results
SELECT id FROM taskqueue.tasks
WHERE id = ANY ($1::uuid[]) AND ($2::text IS NULL OR tenant = $2);
