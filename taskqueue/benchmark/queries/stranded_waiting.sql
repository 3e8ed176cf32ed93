-- taskqueue bench (crash): waiting tasks none of whose parents is unfinished,
-- which nothing would ever release (the reconciler's safety net aside).
SELECT count(*)
FROM taskqueue.tasks t
WHERE t.status = 'waiting'
  AND NOT EXISTS (
      SELECT FROM taskqueue.task_dependencies d
      JOIN taskqueue.tasks p ON p.id = d.parent_id
      WHERE d.child_id = t.id AND p.status IN ('waiting', 'queued', 'running'));
