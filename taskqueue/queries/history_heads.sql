-- Each lane's newest link of the history's hash chain: what to export as
-- an external anchor (taskqueue verify-history --heads).
SELECT lane, seq, encode(hash, 'hex') AS hash
FROM taskqueue.history_heads
ORDER BY lane;
