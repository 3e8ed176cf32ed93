-- write-path: worker
-- write-path-set: enable_seqscan = off
-- complete_tasks.sql for a batch in which some task has a callback: the
-- same, and the tasks that ended in one of their callback's events get
-- their delivery queued in the same statement (_task_ended.sql).
--   $1-$11 as complete_tasks.sql
WITH
-- include: _complete_outcomes.sql
,
-- include: _task_ended.sql
,
-- include: _open_lanes.sql
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
