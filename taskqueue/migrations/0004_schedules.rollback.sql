-- Undo 0004_schedules: drops schedules and their ledger; fired tasks stay,
-- without the schedule and slot they came from.
DROP TABLE IF EXISTS taskqueue.schedule_fires;
DROP TABLE IF EXISTS taskqueue.schedules;
ALTER TABLE taskqueue.tasks DROP COLUMN IF EXISTS slot, DROP COLUMN IF EXISTS schedule;
