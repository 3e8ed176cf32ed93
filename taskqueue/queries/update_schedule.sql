-- Change a schedule defined at run time (PATCH). next_run_at moves only when
-- the timing (cron, interval, zone) changed; otherwise slots already due
-- still fire. Schedules defined in code are left alone (their workers would
-- undo the change): no row, and the caller says why.
--   $1 text name, $2 text cron (NULL: every_seconds), $3 int every_seconds,
--   $4 text timezone, $5 text type, $6 jsonb payload, $7 text queue,
--   $8 int priority, $9 int max_retries, $10 float8 timeout_seconds,
--   $11 text catch_up, $12 text overlap,
--   $13 timestamptz first slot of the new timing, used when the timing changed
UPDATE taskqueue.schedules s
SET cron = $2::text,
    every_seconds = $3::int,
    timezone = $4::text,
    type = $5::text,
    payload = $6::jsonb,
    queue = $7::text,
    priority = $8::int,
    max_retries = $9::int,
    timeout_seconds = $10::float8,
    catch_up = $11::text,
    overlap = $12::text,
    next_run_at = CASE
        WHEN (s.cron, s.every_seconds, s.timezone) IS NOT DISTINCT FROM ($2::text, $3::int, $4::text)
        THEN s.next_run_at
        ELSE $13::timestamptz
    END,
    updated_at = now()
WHERE name = $1::text AND source = 'api'
RETURNING *;
