-- Pause or resume a queue (creating its settings row if it has none), log
-- the action, tell the workers (they switch claim statements on a queue's
-- settings) and on resume wake them: its due tasks may be claimed again.
-- Claims read the setting in their own statement, so the change holds for
-- every worker from its next claim.
--   $1 text queue
--   $2 bool paused
--   $3 text who (the token's name, or "local")
WITH changed AS (
    INSERT INTO taskqueue.queues (name, paused) VALUES ($1, $2)
    ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = now()
    RETURNING name, paused
),
logged AS (
    INSERT INTO taskqueue.operator_actions (actor, action, scope)
    SELECT $3, CASE WHEN paused THEN 'pause' ELSE 'resume' END, jsonb_build_object('queue', name)
    FROM changed
)
SELECT name,
       pg_notify('taskqueue_control', json_build_object('queue_settings', name)::text)
           AS told,
       CASE WHEN NOT paused THEN pg_notify('taskqueue', name) END AS woken
FROM changed;
