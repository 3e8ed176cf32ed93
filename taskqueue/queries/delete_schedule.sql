-- Remove a schedule. The tasks it fired, their events and its ledger rows
-- stay: they are history.
--   $1 text name
-- Returns the name, or no row when there is no such schedule.
DELETE FROM taskqueue.schedules WHERE name = $1::text RETURNING name;
