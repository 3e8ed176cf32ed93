-- Counts per queue and status, and retry figures, for /api/stats.
SELECT queue,
       count(*) AS total_tasks,
       count(*) FILTER (WHERE status = 'queued') AS queued_tasks,
       count(*) FILTER (WHERE status = 'queued' AND run_at <= now()) AS due_tasks,
       count(*) FILTER (WHERE status = 'running') AS running_tasks,
       count(*) FILTER (WHERE status = 'succeeded') AS succeeded_tasks,
       count(*) FILTER (WHERE status = 'failed') AS failed_tasks,
       count(*) FILTER (WHERE status = 'cancelled') AS cancelled_tasks,
       coalesce(sum(greatest(attempts - 1, 0)), 0) AS retries,
       count(*) FILTER (WHERE attempts > 1) AS tasks_with_retries
FROM taskqueue.tasks
GROUP BY queue
ORDER BY queue;
