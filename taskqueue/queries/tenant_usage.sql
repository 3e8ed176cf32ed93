-- A tenant's quota and what it uses: the counter plus the deltas not folded
-- in yet (a few rows per ending statement since its last enqueue or fold),
-- and its rate limit on starts with the starts within its current window.
-- A tenant without a row has no quota and is not counted, one without a
-- rate limit keeps no window: NULLs.
--   $1 text tenant
SELECT $1::text AS name, t.max_queued,
       t.unfinished + coalesce((SELECT sum(delta) FROM taskqueue.tenant_counts
                                WHERE tenant = $1), 0)::bigint AS unfinished,
       r.rate_limit, r.rate_period_seconds,
       CASE WHEN r.tenant IS NOT NULL THEN
           (SELECT coalesce(sum(w.n), 0)::int
            FROM unnest(r.rate_window_at, r.rate_window_n) AS w(at, n)
            WHERE w.at > now() - make_interval(secs => r.rate_period_seconds))
       END AS recent_starts
FROM (SELECT 1) AS one
LEFT JOIN taskqueue.tenants t ON t.name = $1
LEFT JOIN taskqueue.tenant_rates r ON r.tenant = $1;
