-- taskqueue bench (pooling): this database's client backends by
-- application_name (a server connection PgBouncer lends carries the name of
-- the client it serves).
SELECT application_name, count(*)::int AS n
FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend'
GROUP BY application_name;
