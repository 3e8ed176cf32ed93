-- Stop sealing the history (`taskqueue history-chain off`; the schema owner
-- only). The links written so far stay and still verify; a tick under way
-- finishes first (it holds the row).
UPDATE taskqueue.history_sealer SET sealing = false;
