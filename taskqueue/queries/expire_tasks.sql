-- write-path: worker
-- write-path-set: enable_seqscan = off
-- The expiry sweep: queued tasks whose expires_at has passed end expired
-- (they never ran), each with its task_expired event, counted in
-- queue_counts, and what follows their end (_task_ended.sql: callbacks,
-- result waiters) and its dependents settled (taskqueue.settle_children: an
-- expired task never ran, so for them it counts as a cancelled parent).
-- Claims never start an expired task (they pass over it:
-- one NULL test per row, measured free) and this is what ends it, whether
-- a claim came across it or none reaches it (nobody serves the queue, a
-- paused queue, a backlog). Reads tasks_expiry_idx (unfinished tasks that
-- have an expiry; 0019_expiry_sweep_index) and no other index: status is
-- tested as text, which the claim index's predicate (status = 'queued')
-- does not fit, so the sweep never steps through the claim index's entries.
-- Its function's plan is kept per worker session, and one made while tasks
-- was empty (a fresh install) must not read the whole table on every sweep
-- from then on: seqscans are off, and the UPDATE finds its rows by id from
-- the array of those locked, never by a join that such a plan could drive
-- from tasks. Those rows are queued (locked so), so it tests no status,
-- which the claim index's predicate would fit.
--   $1 timestamptz the time expiry is judged by (NULL: now(); tests pin it)
--   $2 int         how many rows at most per call
--   $3 text        the sweeping worker's id, kept in the events
WITH due AS MATERIALIZED (
    SELECT id
    FROM taskqueue.tasks
    WHERE expires_at IS NOT NULL AND completed_at IS NULL
      AND status::text = 'queued'
      AND expires_at <= coalesce($1::timestamptz, now())
    ORDER BY expires_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
swept AS (
    UPDATE taskqueue.tasks t
    SET status = 'expired', completed_at = now(),
        last_error = 'expired: not started by its expires_at'
    WHERE t.id = ANY (ARRAY(SELECT id FROM due))
    RETURNING t.id, t.queue, t.status, t.attempts, t.expires_at, t.last_error, t.callback,
              t.children, t.workflow_id, t.tenant
),
swept_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, worker_id, error,
                                       detail)
    SELECT id, 'task_expired', 'expired', attempts, $3::text, last_error,
           jsonb_build_object('expires_at', expires_at, 'found_by', 'sweep')
    FROM swept
),
counted AS (
    INSERT INTO taskqueue.queue_counts (queue, expired, retries, tasks_with_retries)
    SELECT queue, count(*), sum(greatest(attempts - 1, 0)), count(*) FILTER (WHERE attempts > 1)
    FROM swept
    GROUP BY queue
),
ended AS (
    SELECT id, queue, status, attempts, NULL::jsonb AS result, last_error, callback, workflow_id,
           tenant
    FROM swept
),
tenant_changes AS (
    SELECT tenant, -1 AS delta FROM ended
),
-- include: _tenant_counts.sql
,
settled AS (
    SELECT taskqueue.settle_children(array_agg(id ORDER BY id), array_agg(false), $3) AS n
    FROM swept
    WHERE children > 0
    HAVING count(*) > 0
),
-- include: _task_ended.sql
,
-- include: _open_lanes.sql
,
-- include: _ended_notices.sql
SELECT id FROM swept
WHERE (SELECT count(*) FROM done_notices) >= 0 AND (SELECT count(*) FROM settled) >= 0;
