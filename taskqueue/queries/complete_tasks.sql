-- write-path: worker
-- write-path-set: enable_seqscan = off
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
--   $9 text[]   the retry-policy rule that decided (types with a policy; else NULL)
--   $10 text[]  the exception's class name (types with a policy; else NULL)
--   $11 float8[] max_elapsed: no retry due later than created_at + this many
--               seconds (NULL: no bound); past it the task fails, rule 'max_elapsed'
-- 'released' and 'snoozed' put the task back without charging the attempt
-- (released: due now; snoozed: due after its delay). 'permanent' fails the
-- task whatever retries are left. An error or timeout retries while
-- attempts <= max_retries and, with max_elapsed, while the retry would be due
-- within it; else fails. Tasks that finish for good are
-- counted in queue_counts, one row per queue, their result waiters
-- are told (_ended_notices.sql) and their dependents settled (settled in
-- _complete_outcomes.sql). The completer sends
-- complete_tasks_with_callbacks.sql instead when a task of the batch has a
-- callback, so that the others pay nothing for callbacks.
WITH
-- include: _complete_outcomes.sql
,
-- include: _ended_notices.sql
-- Tasks put back due now (released, a zero snooze) wake other workers, with
-- one NOTIFY for the statement.
SELECT finished.id,
       (SELECT pg_notify('taskqueue', queues) IS NOT NULL FROM due_queues
        WHERE queues IS NOT NULL) AS notified,
       (SELECT count(*) FROM done_notices) AS done_notified,
       (SELECT n FROM settled) AS settled
FROM finished;
