-- taskqueue bench (workflow phase): for every task with parents, the time
-- from its last parent's task_succeeded event (written by the completion
-- statement, just before it commits) to its own task_started, in ms.
WITH succeeded AS (
    SELECT task_id, max(at) AS at FROM taskqueue.task_events
    WHERE event_type = 'task_succeeded' GROUP BY task_id
),
started AS (
    SELECT task_id, min(at) AS at FROM taskqueue.task_events
    WHERE event_type = 'task_started' GROUP BY task_id
),
last_parent AS (
    SELECT d.child_id, max(s.at) AS at
    FROM taskqueue.task_dependencies d
    JOIN succeeded s ON s.task_id = d.parent_id
    GROUP BY d.child_id
)
SELECT extract(epoch FROM st.at - lp.at)::float8 * 1000 AS ms
FROM last_parent lp
JOIN started st ON st.task_id = lp.child_id
ORDER BY 1;
