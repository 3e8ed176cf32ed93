-- Fold each queue's rows of queue_counts into one: the finishing statements
-- append a row each, so the table stays a few rows per queue only if someone
-- folds it. Rows are taken FOR UPDATE SKIP LOCKED, so folders running at once
-- fold different rows (each writes its own sum; the counts read the same).
-- Readers see the rows before or after, never both: it is one statement.
-- Rows of the last two minutes are left as they are: queue_states.sql reads
-- what finished in the last minute from their times (0023_recent_from_counts);
-- a folded row takes the time of the newest row it folds, older than that.
--   $1 int          at most this many rows
--   $2 timestamptz  now (NULL: the database's clock)
-- Returns how many rows were folded away.
WITH crowded AS (
    SELECT queue FROM taskqueue.queue_counts
    WHERE at < coalesce($2::timestamptz, now()) - interval '2 minutes'
    GROUP BY queue HAVING count(*) > 1
),
taken AS MATERIALIZED (
    SELECT c.id
    FROM taskqueue.queue_counts c
    WHERE c.queue IN (SELECT queue FROM crowded)
      AND c.at < coalesce($2::timestamptz, now()) - interval '2 minutes'
    ORDER BY c.id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
),
gone AS (
    DELETE FROM taskqueue.queue_counts c
    USING taken
    WHERE c.id = taken.id
    RETURNING c.*
),
folded AS (
    INSERT INTO taskqueue.queue_counts (queue, succeeded, failed, cancelled, retries,
                                        tasks_with_retries, expired, at)
    SELECT queue, sum(succeeded), sum(failed), sum(cancelled), sum(retries),
           sum(tasks_with_retries), sum(expired), max(at)
    FROM gone
    GROUP BY queue
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) - (SELECT count(*) FROM folded) AS folded;
