-- Set or clear how long a queue's finished tasks are kept, by state
-- (queue_retention, not queues: a row in queues would send the queue's
-- claims down the governed path), and log the change. Workers read it on
-- their next prune; nobody needs telling.
--   $1 text     queue
--   $2 bool     change retain_succeeded?   $3 interval the new one (NULL: default)
--   $4 bool     change retain_failed?      $5 interval
--   $6 bool     change retain_cancelled?   $7 interval
--   $8 text     who
--   $9 jsonb    the change as asked, for the log
WITH changed AS (
    INSERT INTO taskqueue.queue_retention AS q (queue, retain_succeeded, retain_failed,
                                               retain_cancelled)
    VALUES ($1, CASE WHEN $2 THEN $3::interval END, CASE WHEN $4 THEN $5::interval END,
            CASE WHEN $6 THEN $7::interval END)
    ON CONFLICT (queue) DO UPDATE
    SET retain_succeeded = CASE WHEN $2 THEN $3::interval ELSE q.retain_succeeded END,
        retain_failed = CASE WHEN $4 THEN $5::interval ELSE q.retain_failed END,
        retain_cancelled = CASE WHEN $6 THEN $7::interval ELSE q.retain_cancelled END,
        updated_at = now()
    RETURNING queue
)
INSERT INTO taskqueue.operator_actions (actor, action, scope)
SELECT $8, 'retention', jsonb_build_object('queue', queue) || $9::jsonb FROM changed;
