-- The body of complete_tasks.sql and complete_tasks_with_callbacks.sql:
-- the outcomes recorded, fenced, with their events and counts, the queues
-- to wake (due_queues), the tasks that ended for good (ended) and their
-- dependents settled (settled: the statement's final SELECT reads it). Ends
-- without a comma.
outcome AS (
    SELECT *
    FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::jsonb[], $6::float8[],
                $7::text[], $9::text[], $10::text[], $11::float8[])
        AS o(id, attempt, kind, error, result, delay, reason, rule, exception, max_elapsed)
),
finished AS (
    UPDATE taskqueue.tasks t
    SET status = CASE
            WHEN o.kind = 'succeeded' THEN 'succeeded'
            WHEN o.kind IN ('released', 'snoozed') THEN 'queued'
            WHEN o.kind = 'permanent' THEN 'failed'
            WHEN t.attempts <= t.max_retries
                 AND (o.max_elapsed IS NULL
                      OR now() + make_interval(secs => o.delay)
                         <= t.created_at + make_interval(secs => o.max_elapsed))
                THEN 'queued'
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
                 AND (o.max_elapsed IS NULL
                      OR now() + make_interval(secs => o.delay)
                         <= t.created_at + make_interval(secs => o.max_elapsed))
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
            WHEN o.kind IN ('error', 'timeout')
                 AND (t.attempts > t.max_retries
                      OR now() + make_interval(secs => o.delay)
                         > t.created_at + make_interval(secs => o.max_elapsed))
                THEN now()
        END
    FROM outcome o
    WHERE t.id = o.id
      AND t.status = 'running'
      AND t.locked_by = $8
      AND t.attempts = o.attempt
    RETURNING t.id, t.queue, t.status, t.run_at, o.attempt, o.kind, o.error, o.delay, o.reason,
              o.exception,
              -- An error or timeout failed with attempts left: max_elapsed ended it.
              CASE WHEN o.kind IN ('error', 'timeout') AND t.status = 'failed'
                        AND o.attempt <= t.max_retries THEN 'max_elapsed'
                   ELSE o.rule END AS rule,
              t.callback, t.children, t.workflow_id, t.concurrency_key, t.tenant,
              -- Copied on only for a callback's body (results may be large).
              CASE WHEN t.callback IS NOT NULL THEN t.result END AS result,
              -- The result's seal for the history chain (0021_sealed_by_workers):
              -- the document is in hand here, where the sealer would look it up.
              CASE WHEN o.kind = 'succeeded' THEN taskqueue.document_seal(o.result) END AS seal
),
finished_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, worker_id, error,
                                       detail, seal)
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
               WHEN status = 'queued' THEN jsonb_strip_nulls(jsonb_build_object(
                   'failure', kind, 'retry_at', run_at, 'rule', rule, 'exception', exception))
               ELSE jsonb_strip_nulls(jsonb_build_object(
                   'failure', coalesce(reason, kind), 'rule', rule, 'exception', exception))
           END,
           seal
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
ended AS (
    SELECT id, queue, status, attempt AS attempts, result, error AS last_error, callback,
           children, workflow_id, tenant
    FROM finished
    WHERE status IN ('succeeded', 'failed')
),
tenants_counted AS (
    -- A copy of _tenant_counts.sql (fragments cannot nest): tenants with a
    -- quota count what ended for good down.
    INSERT INTO taskqueue.tenant_counts (tenant, delta)
    SELECT e.tenant, -count(*)
    FROM ended e
    WHERE e.tenant IS NOT NULL
      AND EXISTS (SELECT 1 FROM taskqueue.tenants n WHERE n.name = e.tenant)
    GROUP BY e.tenant
),
settled AS (
    -- Tasks that ended for good and have dependents settle them here
    -- (taskqueue.settle_children: the last parent to finish makes a child
    -- queued, a failure cancels the children that asked for it); a retry is
    -- not an end and settles nothing. No row (no call) unless such a task
    -- ended.
    SELECT taskqueue.settle_children(array_agg(id ORDER BY id),
                                     array_agg(status = 'succeeded' ORDER BY id), $8) AS n
    FROM ended
    WHERE children > 0
    HAVING count(*) > 0
),
due_queues AS (
    -- A task with a concurrency_key that stopped running frees a slot of its
    -- key: claimers that found the key full hear of it now, not at a poll.
    SELECT string_agg(DISTINCT queue, ',') AS queues
    FROM finished
    WHERE (status = 'queued' AND run_at <= now()) OR concurrency_key IS NOT NULL
)
