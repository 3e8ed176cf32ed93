-- Events by id, with their task's queue and type: ids the live stream
-- passed over while they were not yet committed, looked up again.
--   $1 bigint[] event ids
SELECT e.id, e.task_id, e.at, e.event_type, e.status::text AS status, e.attempt, e.worker_id,
       t.queue, t.type, t.tenant
FROM taskqueue.task_events e
LEFT JOIN taskqueue.tasks t ON t.id = e.task_id
WHERE e.id = ANY ($1::bigint[])
ORDER BY e.id;
