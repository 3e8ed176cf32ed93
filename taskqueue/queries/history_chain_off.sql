-- Stop sealing the history (`taskqueue history-chain off`; the schema owner
-- only). What committed since the last tick is sealed first, with writers
-- held off until this commits, so every event written while it was on is
-- sealed. The links written so far stay and still verify.
LOCK TABLE taskqueue.task_events IN SHARE MODE;
SELECT FROM taskqueue.history_sealer FOR UPDATE;  -- a tick under way ends first
SELECT taskqueue.seal_history(2147483647);
UPDATE taskqueue.history_sealer SET sealing = false;
