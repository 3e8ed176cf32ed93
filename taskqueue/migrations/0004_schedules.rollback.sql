-- Undo 0004_schedules: drops schedules and their ledger; fired tasks stay,
-- without the schedule and slot they came from. The worker role's policy
-- for inserting a schedule's tasks (deploy/postgres/roles.sql) names the
-- column, so it goes first; roles.sql, run again after migrating, restores it.
DROP POLICY IF EXISTS taskqueue_worker_fire ON taskqueue.tasks;
DROP TABLE IF EXISTS taskqueue.schedule_fires;
DROP TABLE IF EXISTS taskqueue.schedules;
ALTER TABLE taskqueue.tasks DROP COLUMN IF EXISTS slot, DROP COLUMN IF EXISTS schedule;
