-- Set or clear a queue's concurrency and rate limits (creating its settings
-- row if it has none), log the change and tell the workers (they switch
-- claim statements on a queue's settings). Runs in a transaction with
-- recount_running.sql: this statement takes the row's lock, so that the
-- recount that follows sees every claim of the queue that came before.
--   $1 text   queue
--   $2 bool   change the concurrency limit?
--   $3 int    the new concurrency limit (NULL: none)
--   $4 bool   change the rate limit?
--   $5 int    tasks per period (NULL: no rate limit)
--   $6 float8 the period in seconds (NULL with $5)
--   $7 text   who
--   $8 jsonb  the change as asked, for the log
--   $9 bool   change the per-key concurrency?
--   $10 int   at most this many running per concurrency_key (NULL: none)
WITH changed AS (
    INSERT INTO taskqueue.queues AS q (name, concurrency_limit, rate_limit, rate_period_seconds,
                                       per_key_concurrency)
    VALUES ($1, CASE WHEN $2 THEN $3::int END, CASE WHEN $4 THEN $5::int END,
            CASE WHEN $4 THEN $6::float8 END, CASE WHEN $9 THEN $10::int END)
    ON CONFLICT (name) DO UPDATE
    SET concurrency_limit = CASE WHEN $2 THEN $3::int ELSE q.concurrency_limit END,
        per_key_concurrency = CASE WHEN $9 THEN $10::int ELSE q.per_key_concurrency END,
        rate_limit = CASE WHEN $4 THEN $5::int ELSE q.rate_limit END,
        rate_period_seconds = CASE WHEN $4 THEN $6::float8 ELSE q.rate_period_seconds END,
        updated_at = now()
    RETURNING name
),
logged AS (
    INSERT INTO taskqueue.operator_actions (actor, action, scope)
    SELECT $7, 'limit', jsonb_build_object('queue', name) || $8::jsonb FROM changed
)
SELECT name,
       pg_notify('taskqueue_control', json_build_object('queue_settings', name)::text) AS told
FROM changed;
