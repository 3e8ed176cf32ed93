-- Undo 0011_expired_status as far as PostgreSQL allows: an enum value cannot
-- be dropped, so it stays (IF NOT EXISTS makes applying it again harmless),
-- and expired tasks read as cancelled, a status older code knows. Their
-- history keeps its task_expired events.
UPDATE taskqueue.tasks SET status = 'cancelled' WHERE status = 'expired';
