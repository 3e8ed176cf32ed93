-- Which of these queues have settings (a pause or a limit): a worker claims
-- from those through claim_governed_tasks.sql.
--   $1 text[] queues
SELECT name FROM taskqueue.queues WHERE name = ANY ($1::text[]);
