-- Sequences phase: in each sequence of queue $1, from the history,
--   overlaps:   two attempts of different tasks of one key whose running
--               spans (task_started to the attempt's next event) overlap
--   violations: tasks that first started before the task enqueued just
--               before them in their key (payload "pos") had ended for good
--   unfinished: tasks not succeeded or failed
--   $1 text queue
WITH spans AS MATERIALIZED (
    SELECT t.sequence_key AS key, t.id, e.at AS started,
           coalesce((SELECT min(x.at) FROM taskqueue.task_events x
                     WHERE x.task_id = e.task_id AND x.id > e.id), 'infinity') AS ended
    FROM taskqueue.tasks t
    JOIN taskqueue.task_events e ON e.task_id = t.id AND e.event_type = 'task_started'
    WHERE t.queue = $1 AND t.sequence_key IS NOT NULL
),
tasks AS MATERIALIZED (
    SELECT t.sequence_key AS key, (t.payload->>'pos')::int AS pos, t.status,
           (SELECT min(s.started) FROM spans s WHERE s.id = t.id) AS first_started,
           (SELECT max(x.at) FROM taskqueue.task_events x
            WHERE x.task_id = t.id
              AND x.event_type IN ('task_succeeded', 'task_failed', 'task_cancelled')) AS ended
    FROM taskqueue.tasks t
    WHERE t.queue = $1 AND t.sequence_key IS NOT NULL
)
SELECT (SELECT count(*) FROM spans a JOIN spans b
        ON a.key = b.key AND a.id < b.id AND a.started < b.ended AND b.started < a.ended)::int
           AS overlaps,
       (SELECT count(*) FROM tasks a JOIN tasks b ON a.key = b.key AND b.pos = a.pos + 1
        WHERE b.first_started < a.ended OR (b.first_started IS NOT NULL AND a.ended IS NULL))::int
           AS violations,
       (SELECT count(*) FROM tasks WHERE status NOT IN ('succeeded', 'failed'))::int
           AS unfinished;
