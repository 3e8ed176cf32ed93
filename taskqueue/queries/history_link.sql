-- One link of the history's hash chain, to check a head kept outside the
-- database (taskqueue verify-history --anchor): hash NULL when retention
-- deleted it or it never existed (head_seq, the lane's newest, says which).
--   $1 int lane, $2 bigint seq
SELECT (SELECT encode(l.hash, 'hex') FROM taskqueue.history_links l
        WHERE l.lane = $1::int AND l.seq = $2::bigint) AS hash,
       coalesce((SELECT max(k.seq) FROM taskqueue.history_links k WHERE k.lane = $1::int), 0)
           AS head_seq;
