-- Fairness phase: how many of a tenant's tasks are still queued.
--   $1 text tenant
SELECT count(*)::bigint FROM taskqueue.tasks WHERE tenant = $1 AND status = 'queued';
