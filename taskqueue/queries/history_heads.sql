-- Each lane's newest link of the history's hash chain: what to export as
-- an external anchor (taskqueue verify-history --heads). Lanes 0-15 (the
-- trigger's, before 0021) and 16 (the workers' sealer); one without links
-- has seq 0.
SELECT g.lane, coalesce(l.seq, 0) AS seq, coalesce(encode(l.hash, 'hex'), '') AS hash
FROM generate_series(0, 16) AS g(lane)
LEFT JOIN LATERAL (
    SELECT k.seq, k.hash FROM taskqueue.history_links k
    WHERE k.lane = g.lane ORDER BY k.seq DESC LIMIT 1
) l ON true
ORDER BY g.lane;
