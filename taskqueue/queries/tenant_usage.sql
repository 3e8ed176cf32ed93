-- Tenants' quotas and what they use: the counter plus the deltas not folded
-- in yet (a few rows per ending statement since its last enqueue or fold),
-- and the rate limit on starts with the starts within its current window.
-- A tenant without a row has no quota and is not counted, one without a
-- rate limit keeps no window: NULLs.
--   $1 text one tenant (any name: a row even without quota or limit), or
--           NULL for every tenant with a row in either table (counted: it
--           has or had a quota; or rate-limited), by name
--   $2 int  skip this many (the list's page)
--   $3 int  at most this many (NULL: all)
SELECT n.name, t.max_queued,
       t.unfinished + coalesce((SELECT sum(c.delta) FROM taskqueue.tenant_counts c
                                WHERE c.tenant = n.name), 0)::bigint AS unfinished,
       r.rate_limit, r.rate_period_seconds,
       CASE WHEN r.tenant IS NOT NULL THEN
           (SELECT coalesce(sum(w.n), 0)::int
            FROM unnest(r.rate_window_at, r.rate_window_n) AS w(at, n)
            WHERE w.at > now() - make_interval(secs => r.rate_period_seconds))
       END AS recent_starts
FROM (SELECT $1::text AS name WHERE $1::text IS NOT NULL
      UNION ALL
      SELECT a.name
      FROM (SELECT name FROM taskqueue.tenants
            UNION
            SELECT tenant FROM taskqueue.tenant_rates) a
      WHERE $1::text IS NULL) AS n
LEFT JOIN taskqueue.tenants t ON t.name = n.name
LEFT JOIN taskqueue.tenant_rates r ON r.tenant = n.name
ORDER BY n.name
OFFSET $2 LIMIT $3;
