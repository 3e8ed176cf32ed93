-- Let a paused schedule fire again, from its first slot after now: slots that
-- passed while it was paused are not fired.
--   $1 text name
--   $2 timestamptz its first slot after now
-- Returns the schedule, or no row when it is missing or not paused.
UPDATE taskqueue.schedules
SET paused = false, next_run_at = $2::timestamptz, updated_at = now()
WHERE name = $1::text AND paused
RETURNING *;
