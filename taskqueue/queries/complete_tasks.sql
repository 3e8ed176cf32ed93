-- Record a batch of outcomes from one worker in one statement, with one event
-- per task. Every row is fenced: still running, still locked by this worker,
-- still the same attempt. A row that fails the fence was taken back by the
-- rescuer; it is left alone and gets no event.
--   $1 uuid[]   task ids
--   $2 int[]    the attempt each outcome belongs to
--   $3 text[]   outcome: 'succeeded' | 'error' | 'timeout' | 'released'
--   $4 text[]   error message (NULL for succeeded/released)
--   $5 jsonb[]  result (succeeded only, may be NULL)
--   $6 float8[] retry delay in seconds, used when a failure has retries left
--   $7 text     worker id
-- 'released' (graceful shutdown) puts the task back at once without charging
-- the attempt. A failure retries while attempts <= max_retries, else fails.
WITH outcome AS (
    SELECT *
    FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::jsonb[], $6::float8[])
        AS o(id, attempt, kind, error, result, retry_delay)
),
finished AS (
    UPDATE taskqueue.tasks t
    SET status = CASE
            WHEN o.kind = 'succeeded' THEN 'succeeded'
            WHEN o.kind = 'released' THEN 'queued'
            WHEN t.attempts <= t.max_retries THEN 'queued'
            ELSE 'failed'
        END::taskqueue.task_status,
        attempts = CASE WHEN o.kind = 'released' THEN t.attempts - 1 ELSE t.attempts END,
        run_at = CASE
            WHEN o.kind = 'released' THEN now()
            WHEN o.kind <> 'succeeded' AND t.attempts <= t.max_retries
                THEN now() + make_interval(secs => o.retry_delay)
            ELSE t.run_at
        END,
        locked_by = NULL,
        locked_until = NULL,
        result = CASE WHEN o.kind = 'succeeded' THEN o.result ELSE t.result END,
        last_error = CASE WHEN o.kind IN ('error', 'timeout') THEN o.error ELSE t.last_error END,
        completed_at = CASE
            WHEN o.kind = 'succeeded' THEN now()
            WHEN o.kind IN ('error', 'timeout') AND t.attempts > t.max_retries THEN now()
        END
    FROM outcome o
    WHERE t.id = o.id
      AND t.status = 'running'
      AND t.locked_by = $7
      AND t.attempts = o.attempt
    RETURNING t.id, t.queue, t.status, t.run_at, o.attempt, o.kind, o.error
),
finished_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, worker_id, error,
                                       detail)
    SELECT id,
           CASE
               WHEN kind = 'succeeded' THEN 'task_succeeded'
               WHEN kind = 'released' THEN 'task_released'
               WHEN status = 'queued' THEN 'task_retry_scheduled'
               ELSE 'task_failed'
           END,
           status, attempt, $7, error,
           CASE
               WHEN kind = 'released' THEN jsonb_build_object('reason', 'shutdown')
               WHEN kind IN ('error', 'timeout') AND status = 'queued'
                   THEN jsonb_build_object('failure', kind, 'retry_at', run_at)
               WHEN kind IN ('error', 'timeout') THEN jsonb_build_object('failure', kind)
           END
    FROM finished
),
released_queues AS (
    SELECT string_agg(DISTINCT queue, ',') AS queues FROM finished WHERE kind = 'released'
)
-- Released tasks are due at once: wake other workers, once for the statement.
SELECT finished.id,
       (SELECT pg_notify('taskqueue', queues) FROM released_queues WHERE queues IS NOT NULL)
           AS notified
FROM finished;
