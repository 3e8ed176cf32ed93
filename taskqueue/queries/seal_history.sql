-- One tick of the history's sealer (migration 0021_sealed_by_workers): link
-- the events committed since the last tick, at most about $1 of them; 0 when
-- another worker is sealing or the chain is off.
--   $1 int  events per tick at most
SELECT taskqueue.seal_history($1::int) AS sealed;
