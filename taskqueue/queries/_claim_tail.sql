-- The end of both claims (claim_tasks.sql, claim_governed_tasks.sql): the
-- rows of their candidates CTE become running under this worker's lease,
-- each with its task_started event. A candidate whose expires_at has passed
-- is never started: it becomes expired in the same update, with its
-- task_expired event and its count, and its result waiters are told
-- (_ended_notices.sql follows; ended is defined here). One that also has a
-- callback is left queued for the expiry sweep, which queues the delivery:
-- the claim stays free of the callback statements. Tasks without expires_at
-- pay a NULL test per row. It ends with a comma, before _ended_notices.sql;
-- the final SELECT takes the running rows only.
--   $3 text   worker id, recorded as locked_by
--   $4 float8 lease length in seconds; locked_until comes from the database clock
claimed AS (
    UPDATE taskqueue.tasks AS t
    SET status = CASE WHEN t.expires_at <= now() THEN 'expired'
                      ELSE 'running' END::taskqueue.task_status,
        attempts = CASE WHEN t.expires_at <= now() THEN t.attempts ELSE t.attempts + 1 END,
        locked_by = CASE WHEN t.expires_at <= now() THEN NULL ELSE $3 END,
        locked_until = CASE WHEN t.expires_at <= now() THEN NULL
                            ELSE now() + make_interval(secs => $4) END,
        started_at = CASE WHEN t.expires_at <= now() THEN t.started_at ELSE now() END,
        completed_at = CASE WHEN t.expires_at <= now() THEN now() ELSE t.completed_at END,
        last_error = CASE WHEN t.expires_at <= now() THEN 'expired: not started by its expires_at'
                          ELSE t.last_error END
    -- = ANY(ARRAY(...)) keeps the update on the primary key index; a join
    -- here may be planned as a hash join over a sequential scan of the table.
    WHERE t.id = ANY (ARRAY(SELECT id FROM candidates))
      AND NOT coalesce(t.expires_at <= now() AND t.callback IS NOT NULL, false)
    RETURNING t.id, t.queue, t.type, t.payload::text AS payload, t.priority, t.attempts,
              t.max_retries, t.timeout_seconds, t.run_at, t.traceparent, t.status,
              t.expires_at, t.last_error, t.callback IS NOT NULL AS has_callback
),
started_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, worker_id)
    SELECT id, 'task_started', 'running', attempts, $3 FROM claimed WHERE status = 'running'
),
expired_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, worker_id, error,
                                       detail)
    SELECT id, 'task_expired', 'expired', attempts, $3, last_error,
           jsonb_build_object('expires_at', expires_at, 'found_by', 'claim')
    FROM claimed
    WHERE status = 'expired'
),
expired_counted AS (
    INSERT INTO taskqueue.queue_counts (queue, expired, retries, tasks_with_retries)
    SELECT queue, count(*), sum(greatest(attempts - 1, 0)), count(*) FILTER (WHERE attempts > 1)
    FROM claimed
    WHERE status = 'expired'
    GROUP BY queue
),
ended AS (
    SELECT id FROM claimed WHERE status = 'expired'
),
