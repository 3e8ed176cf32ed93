-- write-path: api
-- Bulk delete: matched tasks that are finished (succeeded, failed, expired,
-- cancelled) are deleted; each gets a task_deleted event, and the rest of
-- its history stays (task_events has no foreign key). Queued and running
-- tasks are never deleted. The action is logged.
--   $1-$8, $11     which tasks (and of which tenant), how many at most: see _bulk_match.sql
--   $9 text        who, for the operator log
--   $10 jsonb      what was asked, for the operator log
-- Returns how many tasks matched, how many changed, and the last id matched
-- (pass it as $7 for the next chunk when matched = $8).
WITH
-- include: _bulk_match.sql
changed AS (
    DELETE FROM taskqueue.tasks t
    USING matched m
    WHERE t.id = m.id AND m.status IN ('succeeded', 'failed', 'cancelled', 'expired')
    RETURNING t.id, t.status, t.attempts
),
changed_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt)
    SELECT id, 'task_deleted', status, attempts FROM changed
),
summary AS (
    SELECT (SELECT count(*) FROM matched) AS matched,
           (SELECT count(*) FROM changed) AS changed,
           (SELECT id FROM matched ORDER BY id DESC LIMIT 1) AS last_id
),
logged AS (
    INSERT INTO taskqueue.operator_actions (actor, action, scope, result)
    SELECT $9, 'delete', $10::jsonb, jsonb_build_object('matched', matched, 'changed', changed)
    FROM summary
)
SELECT matched, changed, last_id FROM summary;
