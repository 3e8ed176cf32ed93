-- Undo 0013_tenants: tasks belong to no tenant.
ALTER TABLE taskqueue.tasks DROP COLUMN IF EXISTS tenant;
