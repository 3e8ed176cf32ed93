-- The process id of the server backend running this statement: behind a
-- connection pooler it differs from the one the client was told at startup.
SELECT pg_backend_pid();
