-- Make sure a schedule defined in code exists as the code says: run by every
-- worker that loads the module, at start. The definition is the code's; an
-- operator's pause is kept, and so is next_run_at while the timing (cron,
-- interval, zone) is unchanged, so that a restart neither skips nor repeats a
-- slot. Writes nothing when the row already matches.
--   $1 text name, $2 text cron (NULL: every_seconds), $3 int every_seconds,
--   $4 text timezone, $5 text type, $6 jsonb payload, $7 text queue,
--   $8 int priority, $9 int max_retries, $10 float8 timeout_seconds,
--   $11 text catch_up, $12 text overlap,
--   $13 timestamptz first slot, used when the schedule is new or its timing changed
-- Returns the schedule when it was added or changed; no row when it already matched.
INSERT INTO taskqueue.schedules AS s (name, cron, every_seconds, timezone, type, payload, queue,
                                      priority, max_retries, timeout_seconds, catch_up, overlap,
                                      source, next_run_at)
VALUES ($1::text, $2::text, $3::int, $4::text, $5::text, $6::jsonb, $7::text, $8::int, $9::int,
        $10::float8, $11::text, $12::text, 'code', $13::timestamptz)
ON CONFLICT (name) DO UPDATE
SET cron = EXCLUDED.cron,
    every_seconds = EXCLUDED.every_seconds,
    timezone = EXCLUDED.timezone,
    type = EXCLUDED.type,
    payload = EXCLUDED.payload,
    queue = EXCLUDED.queue,
    priority = EXCLUDED.priority,
    max_retries = EXCLUDED.max_retries,
    timeout_seconds = EXCLUDED.timeout_seconds,
    catch_up = EXCLUDED.catch_up,
    overlap = EXCLUDED.overlap,
    source = 'code',
    next_run_at = CASE
        WHEN (s.cron, s.every_seconds, s.timezone)
             IS NOT DISTINCT FROM (EXCLUDED.cron, EXCLUDED.every_seconds, EXCLUDED.timezone)
        THEN s.next_run_at
        ELSE EXCLUDED.next_run_at
    END,
    updated_at = now()
WHERE (s.cron, s.every_seconds, s.timezone, s.type, s.payload, s.queue, s.priority,
       s.max_retries, s.timeout_seconds, s.catch_up, s.overlap, s.source)
      IS DISTINCT FROM
      (EXCLUDED.cron, EXCLUDED.every_seconds, EXCLUDED.timezone, EXCLUDED.type,
       EXCLUDED.payload, EXCLUDED.queue, EXCLUDED.priority, EXCLUDED.max_retries,
       EXCLUDED.timeout_seconds, EXCLUDED.catch_up, EXCLUDED.overlap, 'code')
RETURNING *;
