-- PostgreSQL cannot drop a value from an enum; 'waiting' stays, unused once
-- 0010_workflows is rolled back (which cancels any waiting task).
SELECT 1;
