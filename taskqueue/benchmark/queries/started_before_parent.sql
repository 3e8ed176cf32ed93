-- taskqueue bench (crash): dependencies whose child first started before its
-- parent's (last) success: an order a crash must never break.
SELECT count(*)
FROM taskqueue.task_dependencies d
WHERE (SELECT min(at) FROM taskqueue.task_events
       WHERE task_id = d.child_id AND event_type = 'task_started')
    < (SELECT max(at) FROM taskqueue.task_events
       WHERE task_id = d.parent_id AND event_type = 'task_succeeded');
