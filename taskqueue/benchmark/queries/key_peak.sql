-- Keys phase: the most tasks of one concurrency_key running right now.
--   $1 text queue
SELECT coalesce(max(n), 0)::int
FROM (SELECT count(*) AS n FROM taskqueue.tasks
      WHERE status = 'running' AND queue = $1 AND concurrency_key IS NOT NULL
      GROUP BY concurrency_key) per_key;
