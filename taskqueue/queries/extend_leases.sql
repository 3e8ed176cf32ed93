-- write-path: worker
-- write-path-set: enable_seqscan = off
-- Push the lease of this worker's in-flight tasks forward, in one statement.
-- Returns the ids still held; an id missing from the answer was lost.
--   $1 uuid[] task ids
--   $2 text   worker id
--   $3 float8 lease length in seconds, from the database clock
UPDATE taskqueue.tasks
SET locked_until = now() + make_interval(secs => $3)
WHERE id = ANY($1::uuid[]) AND status = 'running' AND locked_by = $2
RETURNING id;
