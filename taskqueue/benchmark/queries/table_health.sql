-- taskqueue bench (pressure): dead row versions and index sizes, as the
-- statistics collector last saw them (updated within a second or so).
-- n_dead_tup counts heap versions; the indexes' bytes grow with the dead
-- entries that a claim has to step over, which is what slows it.
SELECT coalesce(sum(n_dead_tup) FILTER (WHERE relname = 'tasks'), 0)::bigint AS tasks_dead,
       coalesce(sum(n_dead_tup), 0)::bigint AS schema_dead,
       coalesce(sum(pg_indexes_size(relid)) FILTER (WHERE relname = 'tasks'), 0)::bigint
           AS tasks_index_bytes
FROM pg_stat_user_tables
WHERE schemaname = 'taskqueue';
