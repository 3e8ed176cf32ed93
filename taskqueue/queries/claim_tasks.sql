-- Claim up to $2 due tasks of the types this worker can run, in claim order
-- (priority, then run_at, then id), and write each one's task_started event:
-- the claim for queues that have no settings (no pause, no limit), which is
-- nearly always what a worker runs.
--   $1 text[] queues to claim from
--   $2 int    how many rows at most (the worker's free capacity)
--   $3 text   worker id, recorded as locked_by
--   $4 float8 lease length in seconds; locked_until comes from the database clock
--   $5 text[] task types this worker has handlers for
-- A queue that has a row in taskqueue.queues (paused, or limited) is skipped
-- here, whatever the worker believes: those go through
-- claim_governed_tasks.sql, which the worker switches to when it sees such a
-- row (at once on the NOTIFY that a settings change sends, and at the latest
-- within a poll interval).
-- The candidate CTE is MATERIALIZED on purpose: without the fence the planner
-- may inline it into the UPDATE and lock/update more rows than LIMIT allows.
-- Each (queue, type) is walked on its own through tasks_claim_idx (queue,
-- type, priority DESC, run_at, id): a deep backlog in one queue or of a type
-- this worker cannot run costs it nothing, and a task is never claimed by a
-- worker that would have to fail it. With several busy (queue, type) pairs a
-- few surplus rows stay locked until this statement's commit, microseconds
-- later, and other workers skip past them meanwhile.
WITH candidates AS MATERIALIZED (
    SELECT c.id
    FROM unnest($1::text[]) AS q(queue)
    CROSS JOIN unnest($5::text[]) AS k(type)
    CROSS JOIN LATERAL (
        SELECT t.id, t.priority, t.run_at
        FROM taskqueue.tasks t
        WHERE t.status = 'queued' AND t.queue = q.queue AND t.type = k.type
          AND t.run_at <= now()
        ORDER BY t.priority DESC, t.run_at, t.id
        LIMIT $2
        FOR UPDATE SKIP LOCKED
    ) c
    WHERE NOT EXISTS (SELECT FROM taskqueue.queues s WHERE s.name = q.queue)
    ORDER BY c.priority DESC, c.run_at, c.id
    LIMIT $2
),
-- include: _claim_tail.sql
SELECT * FROM claimed ORDER BY priority DESC, run_at, id;
