-- A tenant's tasks counted per queue, from its own rows (tasks_tenant_idx):
-- GET /api/stats as a tenant's token sees it. Unlike the operator's read
-- model (counters per queue) this counts rows: a page's read, never an
-- enqueue's.
--   $1 text tenant
SELECT queue,
       count(*) AS total,
       count(*) FILTER (WHERE status = 'queued') AS queued,
       count(*) FILTER (WHERE status = 'waiting') AS waiting,
       count(*) FILTER (WHERE status = 'queued' AND run_at <= now()) AS due,
       count(*) FILTER (WHERE status = 'running') AS running,
       count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE status = 'expired') AS expired,
       coalesce(sum(greatest(attempts - 1, 0)), 0) AS retries,
       count(*) FILTER (WHERE attempts > 1) AS tasks_with_retries
FROM taskqueue.tasks
WHERE tenant = $1
GROUP BY queue
ORDER BY queue;
