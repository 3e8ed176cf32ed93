-- Record a batch of outcomes from one worker in one statement, with one event
-- per task. Every row is fenced: still running, still locked by this worker,
-- still the same attempt. A row that fails the fence was taken back by the
-- rescuer; it is left alone and gets no event.
--   $1 uuid[]   task ids
--   $2 int[]    the attempt each outcome belongs to
--   $3 text[]   outcome: 'succeeded' | 'error' | 'timeout' | 'permanent' | 'snoozed'
--               | 'released'
--   $4 text[]   error message (error, timeout, permanent; else NULL)
--   $5 jsonb[]  result (succeeded only, may be NULL)
--   $6 float8[] seconds until the task is due again: the retry delay of a
--               failure with retries left, or how long a snooze lasts
--   $7 text[]   why, for the event's detail: released ('shutdown',
--               'lease_deadline', ...), permanent ('invalid_payload'), snoozed
--               (the handler's reason); NULL for the default
--   $8 text     worker id
-- 'released' and 'snoozed' put the task back without charging the attempt
-- (released: due now; snoozed: due after its delay). 'permanent' fails the
-- task whatever retries are left. An error or timeout retries while
-- attempts <= max_retries, else fails. Tasks that finish for good are
-- counted in queue_counts, one row per queue. Tasks that finish for good and
-- have dependents (children > 0) settle them here (taskqueue.settle_children:
-- the last parent to finish makes a child queued, a failure cancels the
-- children that asked for it); a retry is not a finish and settles nothing.
WITH outcome AS (
    SELECT *
    FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::jsonb[], $6::float8[],
                $7::text[])
        AS o(id, attempt, kind, error, result, delay, reason)
),
finished AS (
    UPDATE taskqueue.tasks t
    SET status = CASE
            WHEN o.kind = 'succeeded' THEN 'succeeded'
            WHEN o.kind IN ('released', 'snoozed') THEN 'queued'
            WHEN o.kind = 'permanent' THEN 'failed'
            WHEN t.attempts <= t.max_retries THEN 'queued'
            ELSE 'failed'
        END::taskqueue.task_status,
        attempts = CASE
            WHEN o.kind IN ('released', 'snoozed') THEN t.attempts - 1
            ELSE t.attempts
        END,
        run_at = CASE
            WHEN o.kind = 'released' THEN now()
            WHEN o.kind = 'snoozed' THEN now() + make_interval(secs => o.delay)
            WHEN o.kind IN ('error', 'timeout') AND t.attempts <= t.max_retries
                THEN now() + make_interval(secs => o.delay)
            ELSE t.run_at
        END,
        locked_by = NULL,
        locked_until = NULL,
        result = CASE WHEN o.kind = 'succeeded' THEN o.result ELSE t.result END,
        last_error = CASE
            WHEN o.kind IN ('error', 'timeout', 'permanent') THEN o.error
            ELSE t.last_error
        END,
        completed_at = CASE
            WHEN o.kind IN ('succeeded', 'permanent') THEN now()
            WHEN o.kind IN ('error', 'timeout') AND t.attempts > t.max_retries THEN now()
        END
    FROM outcome o
    WHERE t.id = o.id
      AND t.status = 'running'
      AND t.locked_by = $8
      AND t.attempts = o.attempt
    RETURNING t.id, t.queue, t.status, t.run_at, o.attempt, o.kind, o.error, o.delay, o.reason,
              t.children
),
finished_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, worker_id, error,
                                       detail)
    SELECT id,
           CASE
               WHEN kind = 'succeeded' THEN 'task_succeeded'
               WHEN kind = 'released' THEN 'task_released'
               WHEN kind = 'snoozed' THEN 'task_snoozed'
               WHEN status = 'queued' THEN 'task_retry_scheduled'
               ELSE 'task_failed'
           END,
           status, attempt, $8, error,
           CASE
               WHEN kind = 'succeeded' THEN NULL
               WHEN kind = 'released' THEN jsonb_build_object('reason', coalesce(reason, 'shutdown'))
               WHEN kind = 'snoozed' THEN jsonb_strip_nulls(jsonb_build_object(
                   'seconds', delay, 'run_at', run_at, 'reason', reason))
               WHEN status = 'queued' THEN jsonb_build_object('failure', kind, 'retry_at', run_at)
               ELSE jsonb_build_object('failure', coalesce(reason, kind))
           END
    FROM finished
),
counted AS (
    -- What finished for good is counted: one appended row per queue (see
    -- queue_counts in 0009_retention.sql; no row is updated per completion).
    INSERT INTO taskqueue.queue_counts (queue, succeeded, failed, retries, tasks_with_retries)
    SELECT queue,
           count(*) FILTER (WHERE status = 'succeeded'),
           count(*) FILTER (WHERE status = 'failed'),
           sum(greatest(attempt - 1, 0)),
           count(*) FILTER (WHERE attempt > 1)
    FROM finished
    WHERE status IN ('succeeded', 'failed')
    GROUP BY queue
),
running_counted AS (
    -- Queues with a concurrency limit count their running tasks down.
    UPDATE taskqueue.queues s
    SET running = greatest(s.running - f.n, 0)
    FROM (SELECT queue, count(*)::int AS n FROM finished GROUP BY queue) AS f
    WHERE s.name = f.queue AND s.concurrency_limit IS NOT NULL
),
due_queues AS (
    SELECT string_agg(DISTINCT queue, ',') AS queues
    FROM finished
    WHERE status = 'queued' AND run_at <= now()
),
settled AS (
    -- No row (no call) unless a task with dependents finished for good.
    SELECT taskqueue.settle_children(array_agg(id ORDER BY id),
                                     array_agg(status = 'succeeded' ORDER BY id), $8) AS n
    FROM finished
    WHERE children > 0 AND status IN ('succeeded', 'failed')
    HAVING count(*) > 0
)
-- Tasks put back due now (released, a zero snooze) wake other workers, with
-- one NOTIFY for the statement.
SELECT finished.id,
       (SELECT pg_notify('taskqueue', queues) FROM due_queues WHERE queues IS NOT NULL)
           AS notified,
       (SELECT n FROM settled) AS settled
FROM finished;
