-- Every task: the queued and running ones, counted through their partial
-- indexes (tasks_claim_idx, tasks_lease_idx), and every one that finished,
-- from queue_counts (kept or pruned since). Its cost follows the backlog, not
-- the history.
SELECT (SELECT count(*) FROM taskqueue.tasks WHERE status = 'queued')
       + (SELECT count(*) FROM taskqueue.tasks
          WHERE locked_until IS NOT NULL AND status = 'running')
       + (SELECT coalesce(sum(succeeded + failed + cancelled), 0)::bigint
          FROM taskqueue.queue_counts);
