-- taskqueue bench (pressure): what the server says about one backend: its
-- state, the XID it holds and its xmin (NULLs, or no row, once it has ended).
--   $1 int: the backend's pid
SELECT state, backend_xid::text AS xid, backend_xmin::text AS xmin
FROM pg_stat_activity
WHERE pid = $1;
