-- write-path: api
-- Bulk retry: matched tasks that failed or were cancelled go back to their
-- queue, due now, with a fresh retry budget, each with its task_requeued
-- event, taken back out of the finish counts (queue_counts); one NOTIFY for
-- the statement; the action is logged. Dependencies: a retried task whose
-- parents are not all finished (or are retried with it) goes back to
-- waiting for them instead; a retried parent is waited for again by its
-- children still waiting (their waiting_on counts it again).
--   $1-$8, $11     which tasks (and of which tenant), how many at most: see _bulk_match.sql
--   $9 text        who, for the operator log
--   $10 jsonb      what was asked, for the operator log
-- Returns how many tasks matched, how many changed, and the last id matched
-- (pass it as $7 for the next chunk when matched = $8).
WITH
-- include: _bulk_match.sql
pending AS (
    SELECT d.child_id AS id, count(*)::int AS n
    FROM matched m
    JOIN taskqueue.task_dependencies d ON d.child_id = m.id
    LEFT JOIN taskqueue.tasks p ON p.id = d.parent_id
    WHERE m.status IN ('failed', 'cancelled')
      AND (p.status IN ('waiting', 'queued', 'running')
           OR (d.on_parent_failure = 'hold' AND p.status = 'failed')
           OR d.parent_id IN (SELECT id FROM matched WHERE status IN ('failed', 'cancelled')))
    GROUP BY d.child_id
),
changed AS (
    UPDATE taskqueue.tasks t
    SET status = CASE WHEN pe.n > 0 THEN 'waiting' ELSE 'queued' END::taskqueue.task_status,
        waiting_on = coalesce(pe.n, 0),
        attempts = 0, run_at = now(), completed_at = NULL,
        locked_by = NULL, locked_until = NULL
    FROM matched m
    LEFT JOIN pending pe ON pe.id = m.id
    WHERE t.id = m.id AND m.status IN ('failed', 'cancelled')
    RETURNING t.id, t.queue, t.type, t.priority, t.run_at, t.status, t.children, t.tenant,
              m.status AS was, m.attempts AS was_attempts
),
rewaiting AS MATERIALIZED (
    -- Children still waiting count a retried parent again.
    SELECT d.child_id AS id, count(*)::int AS n
    FROM changed c
    JOIN taskqueue.task_dependencies d ON d.parent_id = c.id
    WHERE c.children > 0 AND d.child_id NOT IN (SELECT id FROM changed)
      -- A held sequence never counted its failed task down (0014_claim_keys).
      AND NOT (d.on_parent_failure = 'hold' AND c.was = 'failed')
    GROUP BY d.child_id
),
rewaiting_locked AS MATERIALIZED (
    -- Status is tested as text here and below: a test of the enum fits
    -- tasks_waiting_idx, which stale statistics can have read in full for
    -- each child (see 0022_settle_in_one_pass).
    SELECT t.id FROM taskqueue.tasks t
    WHERE t.id IN (SELECT id FROM rewaiting) AND t.status::text = 'waiting'
    ORDER BY t.id
    FOR UPDATE
),
rewaited AS (
    UPDATE taskqueue.tasks t
    SET waiting_on = t.waiting_on + r.n
    FROM rewaiting r
    JOIN rewaiting_locked l ON l.id = r.id
    WHERE t.id = r.id AND t.status::text = 'waiting'
),
uncounted AS (
    -- No longer finished: taken back out of queue_counts, one row per queue.
    INSERT INTO taskqueue.queue_counts (queue, failed, cancelled, retries, tasks_with_retries)
    SELECT queue, -count(*) FILTER (WHERE was = 'failed'),
           -count(*) FILTER (WHERE was = 'cancelled'),
           -sum(greatest(was_attempts - 1, 0)), -count(*) FILTER (WHERE was_attempts > 1)
    FROM changed
    GROUP BY queue
),
tenant_changes AS (
    SELECT tenant, 1 AS delta FROM changed
),
-- include: _tenant_counts.sql
,
lane_rows AS (
    SELECT queue, type, priority, run_at, tenant FROM changed WHERE status = 'queued'
),
-- include: _open_lanes.sql
,
changed_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt)
    SELECT id, 'task_requeued', status, 0 FROM changed
),
summary AS (
    SELECT (SELECT count(*) FROM matched) AS matched,
           (SELECT count(*) FROM changed) AS changed,
           (SELECT id FROM matched ORDER BY id DESC LIMIT 1) AS last_id,
           (SELECT string_agg(DISTINCT queue, ',') FROM changed WHERE status = 'queued')
               AS queues
),
logged AS (
    INSERT INTO taskqueue.operator_actions (actor, action, scope, result)
    SELECT $9, 'retry', $10::jsonb, jsonb_build_object('matched', matched, 'changed', changed)
    FROM summary
)
SELECT matched, changed, last_id,
       CASE WHEN queues IS NOT NULL
            THEN pg_notify('taskqueue', CASE WHEN length(queues) > 7000 THEN '*' ELSE queues END)
       END IS NOT NULL AS notified
FROM summary;
