-- taskqueue bench: before each depth drain, leave the tasks table as
-- autovacuum leaves it between bursts, so that every rep starts from the same
-- index state (dead claim-index entries left by the previous rep's drain
-- would otherwise pile up at the head of the index from rep to rep).
VACUUM (ANALYZE) taskqueue.tasks;
