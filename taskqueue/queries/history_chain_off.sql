-- Stop sealing the history (`taskqueue history-chain off`; the owner only).
-- The links written so far stay and still verify.
DROP TRIGGER IF EXISTS task_events_sealed ON taskqueue.task_events;
