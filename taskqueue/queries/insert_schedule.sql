-- Add a schedule defined at run time (REST, CLI, Python API).
--   $1 text name, $2 text cron (NULL: every_seconds), $3 int every_seconds,
--   $4 text timezone, $5 text type, $6 jsonb payload, $7 text queue,
--   $8 int priority, $9 int max_retries, $10 float8 timeout_seconds,
--   $11 text catch_up, $12 text overlap, $13 timestamptz first slot
-- Returns the schedule, or no row when the name is taken.
INSERT INTO taskqueue.schedules (name, cron, every_seconds, timezone, type, payload, queue,
                                 priority, max_retries, timeout_seconds, catch_up, overlap,
                                 source, next_run_at)
VALUES ($1::text, $2::text, $3::int, $4::text, $5::text, $6::jsonb, $7::text, $8::int, $9::int,
        $10::float8, $11::text, $12::text, 'api', $13::timestamptz)
ON CONFLICT (name) DO NOTHING
RETURNING *;
