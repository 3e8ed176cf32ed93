-- Fold each queue's rows of queue_counts: the finishing statements append a
-- row each, so the table stays small only if someone folds it. Rows older
-- than a minute fold into one per queue, which takes the newest one's time
-- (older than any minute from now on); the last minute's rows fold into one
-- per queue and second, which takes the newest time of its second, so that
-- queue_states.sql can still tell what finished in the last minute
-- (0023_recent_from_counts). Only groups of two rows or more are touched.
-- Rows are taken FOR UPDATE SKIP LOCKED, so folders running at once fold
-- different rows (each writes its own sums; the counts read the same).
-- Readers see the rows before or after, never both: it is one statement.
--   $1 int          at most this many rows
--   $2 timestamptz  now (NULL: the database's clock)
-- Returns how many rows were folded away.
WITH grouped AS MATERIALIZED (
    SELECT c.id, c.queue,
           CASE WHEN c.at < coalesce($2::timestamptz, now()) - interval '1 minute'
                THEN '-infinity'::timestamptz
                ELSE date_trunc('second', c.at) END AS bucket
    FROM taskqueue.queue_counts c
),
crowded AS (
    SELECT queue, bucket FROM grouped GROUP BY queue, bucket HAVING count(*) > 1
),
taken AS MATERIALIZED (
    SELECT c.id, g.bucket
    FROM taskqueue.queue_counts c
    JOIN grouped g ON g.id = c.id
    JOIN crowded k ON k.queue = g.queue AND k.bucket = g.bucket
    ORDER BY c.id
    LIMIT $1
    FOR UPDATE OF c SKIP LOCKED
),
gone AS (
    DELETE FROM taskqueue.queue_counts c
    USING taken
    WHERE c.id = taken.id
    RETURNING c.*, taken.bucket
),
folded AS (
    INSERT INTO taskqueue.queue_counts (queue, succeeded, failed, cancelled, retries,
                                        tasks_with_retries, expired, at)
    SELECT queue, sum(succeeded), sum(failed), sum(cancelled), sum(retries),
           sum(tasks_with_retries), sum(expired), max(at)
    FROM gone
    GROUP BY queue, bucket
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) - (SELECT count(*) FROM folded) AS folded;
