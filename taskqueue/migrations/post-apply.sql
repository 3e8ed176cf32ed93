-- Run by every `taskqueue migrate`, after any migration it applied (yoyo's
-- post-apply hook, not a migration: it is not recorded and has no rollback):
-- makes today's and the next three days' partitions of the history that are
-- missing, so that a deploy leaves them ready even where no worker runs yet.
DO $$
BEGIN
    IF to_regprocedure('taskqueue.ensure_event_partitions(integer, timestamptz)') IS NOT NULL THEN
        PERFORM taskqueue.ensure_event_partitions(3);
    END IF;
END
$$;
