-- The `expired` status: a task whose expires_at passed before it started
-- ends there (task_expired event) instead of running. In a migration of its
-- own because PostgreSQL refuses to use an enum value in the transaction
-- that added it, and 0011_expiry_callbacks.sql uses it in an index.
-- depends: 0010_workflows

ALTER TYPE taskqueue.task_status ADD VALUE IF NOT EXISTS 'expired';
