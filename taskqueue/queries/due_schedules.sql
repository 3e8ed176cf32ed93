-- The check every worker runs about once a second: unpaused schedules whose
-- oldest unfired slot has come, oldest first. It walks schedules_due_idx from
-- its start and stops at the first row not due, so it reads only due rows
-- however many schedules exist. Returns the clock the caller plans with.
--   $1 timestamptz the time to check at (tests; NULL: now())
--   $2 int         at most this many schedules
SELECT name, cron, every_seconds, timezone, catch_up, overlap, next_run_at,
       coalesce($1::timestamptz, now()) AS now
FROM taskqueue.schedules
WHERE NOT paused
  AND next_run_at <= coalesce($1::timestamptz, now())
ORDER BY next_run_at
LIMIT $2;
