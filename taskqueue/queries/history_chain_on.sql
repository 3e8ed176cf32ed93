-- Start sealing the history (`taskqueue history-chain on`; the owner only:
-- it makes a trigger). The trigger first: its lock waits for every
-- transaction writing events and holds off new ones until this commits, so
-- the chain's start (history_genesis) is exactly the first event it seals.
-- The start moves only while nothing was ever sealed: once there are links,
-- events written while the chain was off stay unsealed, and verify-history
-- names them.
DROP TRIGGER IF EXISTS task_events_sealed ON taskqueue.task_events;
CREATE TRIGGER task_events_sealed
AFTER INSERT ON taskqueue.task_events
REFERENCING NEW TABLE AS new_events
FOR EACH STATEMENT EXECUTE FUNCTION taskqueue.seal_events();
UPDATE taskqueue.history_genesis
SET first_event = (SELECT coalesce(max(id), 0) + 1 FROM taskqueue.task_events),
    started_at = now()
WHERE NOT EXISTS (SELECT FROM taskqueue.history_links);
