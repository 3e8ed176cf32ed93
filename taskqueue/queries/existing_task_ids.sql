-- Which of these task ids exist, and whose they are (the parents a new task
-- names in depends_on: a task waits only for tasks of its own tenant).
--   $1 uuid[] task ids
--   $2 text   only tasks of this tenant (NULL: any): a tenant's handle does
--             not learn that another tenant's task exists
SELECT id, tenant FROM taskqueue.tasks
WHERE id = ANY ($1::uuid[]) AND ($2::text IS NULL OR tenant = $2);
