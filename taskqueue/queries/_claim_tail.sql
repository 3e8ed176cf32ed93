-- The end of both claims (claim_tasks.sql, claim_governed_tasks.sql): the
-- rows of their candidates CTE become running under this worker's lease,
-- each with its task_started event. It ends without a comma: what follows
-- is the final SELECT, or (governed) ", counted AS (...)".
--   $3 text   worker id, recorded as locked_by
--   $4 float8 lease length in seconds; locked_until comes from the database clock
claimed AS (
    UPDATE taskqueue.tasks AS t
    SET status = 'running',
        attempts = t.attempts + 1,
        locked_by = $3,
        locked_until = now() + make_interval(secs => $4),
        started_at = now()
    -- = ANY(ARRAY(...)) keeps the update on the primary key index; a join
    -- here may be planned as a hash join over a sequential scan of the table.
    WHERE t.id = ANY (ARRAY(SELECT id FROM candidates))
    RETURNING t.id, t.queue, t.type, t.payload::text AS payload, t.priority, t.attempts,
              t.max_retries, t.timeout_seconds, t.run_at, t.traceparent,
              t.callback IS NOT NULL AS has_callback
),
started_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, worker_id)
    SELECT id, 'task_started', 'running', attempts, $3 FROM claimed
)
