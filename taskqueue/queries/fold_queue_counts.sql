-- Fold each queue's rows of queue_counts into one: the finishing statements
-- append a row each, so the table stays a few rows per queue only if someone
-- folds it. Rows are taken FOR UPDATE SKIP LOCKED, so folders running at once
-- fold different rows (each writes its own sum; the counts read the same).
-- Readers see the rows before or after, never both: it is one statement.
--   $1 int at most this many rows
-- Returns how many rows were folded away.
WITH crowded AS (
    SELECT queue FROM taskqueue.queue_counts GROUP BY queue HAVING count(*) > 1
),
taken AS MATERIALIZED (
    SELECT c.id
    FROM taskqueue.queue_counts c
    WHERE c.queue IN (SELECT queue FROM crowded)
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
                                        tasks_with_retries, expired)
    SELECT queue, sum(succeeded), sum(failed), sum(cancelled), sum(retries),
           sum(tasks_with_retries), sum(expired)
    FROM gone
    GROUP BY queue
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) - (SELECT count(*) FROM folded) AS folded;
