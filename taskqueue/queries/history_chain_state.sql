-- Whether the history is being sealed (workers' ticks, 0021_sealed_by_workers),
-- how many links were written, and when a tick last sealed something.
SELECT s.sealing,
       (SELECT count(*) FROM taskqueue.history_links) AS links,
       s.sealed_at
FROM taskqueue.history_sealer s;
