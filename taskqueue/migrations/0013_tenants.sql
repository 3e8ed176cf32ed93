-- Tenants: each task may belong to one (a short name; NULL for the tasks of
-- single-tenant installs, which pay nothing for any of this).
--   tasks.tenant   the tenant a task belongs to: its token stamps it, and a
--                  tenant's token reads and changes only its tenant's tasks
-- The name follows the rule of queue names (taskqueue.validation): it is a
-- filter value in URLs, a metrics label and a log field.
-- depends: 0012_session_revocations

ALTER TABLE taskqueue.tasks ADD COLUMN tenant text;
-- NOT VALID, then validated: the check is known to hold for the existing
-- rows (all NULL), and validating takes a lock that lets writes go on.
ALTER TABLE taskqueue.tasks ADD CONSTRAINT tasks_tenant_shape
    CHECK (length(tenant) <= 64 AND tenant ~ '^[A-Za-z0-9_][A-Za-z0-9_.:-]*$') NOT VALID;
ALTER TABLE taskqueue.tasks VALIDATE CONSTRAINT tasks_tenant_shape;
