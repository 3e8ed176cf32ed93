-- One link of the history's hash chain, to check a head kept outside the
-- database (taskqueue verify-history --anchor): no row when retention
-- deleted it or it never existed (the lane's head says which).
--   $1 int lane, $2 bigint seq
SELECT encode(l.hash, 'hex') AS hash, h.seq AS head_seq
FROM taskqueue.history_heads h
LEFT JOIN taskqueue.history_links l ON l.lane = h.lane AND l.seq = $2::bigint
WHERE h.lane = $1::int;
