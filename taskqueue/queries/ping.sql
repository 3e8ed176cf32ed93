-- Is the database reachable? (readiness checks)
SELECT 1;
