-- Result waiters (taskqueue.results) hear which tasks ended: their ids on
-- the taskqueue_done channel, one NOTIFY per 200 ids; a statement that ends
-- nothing sends none. Expects a CTE ended (id, ...) and ends without a
-- comma; the statement must read done_notices (an unread CTE without writes
-- is never run), e.g. in a one-time filter of its final SELECT.
done_notices AS (
    SELECT pg_notify('taskqueue_done', string_agg(id::text, ','))
    FROM (SELECT id, (row_number() OVER () - 1) / 200 AS chunk FROM ended) AS d
    GROUP BY chunk
)
