-- Start sealing the history (`taskqueue history-chain on`; the schema owner
-- only: no deploy role may write history_sealer). The workers' ticks seal
-- the events written from now on (0021_sealed_by_workers); those written
-- while it was off stay unsealed, and verify-history names them. The
-- chain's start (history_genesis) moves only while nothing was ever sealed.
UPDATE taskqueue.history_sealer
SET sealing = true, snapshot = pg_current_snapshot(), sealed_at = now()
WHERE NOT sealing;
UPDATE taskqueue.history_genesis
SET first_event = (SELECT coalesce(max(id), 0) + 1 FROM taskqueue.task_events),
    started_at = now()
WHERE NOT EXISTS (SELECT FROM taskqueue.history_links);
