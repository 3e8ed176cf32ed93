-- Stop a schedule firing; its slots pass unfired until it is resumed.
--   $1 text name
-- Returns the schedule, or no row when it is missing or already paused.
UPDATE taskqueue.schedules
SET paused = true, updated_at = now()
WHERE name = $1::text AND NOT paused
RETURNING *;
