-- Walk the history's hash chain (migration 0016_history_chain) and return
-- one row per problem found: the task it concerns (NULL for a break in the
-- chain itself), the lane and link, and what is wrong. No rows: every link
-- hashes to what the next one (and the lane's head) says, every sealed event
-- is there unchanged, payloads and results are as written, and every event
-- and task since the chain started is sealed, but for events the workers'
-- sealer has not reached yet (0021_sealed_by_workers: committed after its
-- last tick, while it is on), and tasks whose every event is such.
--   $1 timestamptz  check the links written from then on (NULL: all)
-- Links older than the end of the newest day partition retention dropped
-- (history_drops) are gone but each lane's last one, the anchor: the chain
-- goes on from it, and its events are not looked for.
WITH genesis AS MATERIALIZED (
    SELECT min(first_event) AS first_event, min(started_at) AS started_at
    FROM taskqueue.history_genesis
),
sealer AS MATERIALIZED (
    SELECT snapshot, sealing FROM taskqueue.history_sealer
),
pending AS MATERIALIZED (
    -- Not sealed yet: written since the sealer's last tick.
    SELECT e.id, e.task_id
    FROM taskqueue.task_events e, sealer s
    WHERE s.sealing AND e.xid IS NOT NULL
      AND (e.xid = ANY (ARRAY(SELECT pg_snapshot_xip(s.snapshot)))
           OR e.xid >= pg_snapshot_xmax(s.snapshot))
      -- A transaction that has begun: a forged xid from the future is not
      -- excused as one no tick reached yet.
      AND e.xid < pg_snapshot_xmax(pg_current_snapshot())
),
chain AS (
    SELECT l.*, lag(l.hash) OVER w AS prev_hash, lag(l.seq) OVER w AS prev_seq
    FROM taskqueue.history_links l
    WINDOW w AS (PARTITION BY l.lane ORDER BY l.seq)
),
checked AS MATERIALIZED (
    SELECT c.*,
           c.at < (SELECT max(d.ends) FROM taskqueue.history_drops d) AS anchor
    FROM chain c
    WHERE $1::timestamptz IS NULL OR c.at >= $1::timestamptz
),
link_problems AS (
    SELECT c.lane, c.seq, c.entries,
           CASE
               WHEN c.prev_seq IS NULL AND coalesce(c.anchor, false)
                   THEN NULL  -- where the chain goes on after retention
               WHEN c.prev_seq IS NULL AND c.seq > 1
                   THEN format('links 1 to %s of lane %s are missing', c.seq - 1, c.lane)
               WHEN c.prev_seq IS NOT NULL AND c.seq <> c.prev_seq + 1
                   THEN format('links %s to %s of lane %s are missing',
                               c.prev_seq + 1, c.seq - 1, c.lane)
               WHEN (c.prev_seq IS NOT NULL OR c.seq = 1)
                    AND c.hash IS DISTINCT FROM taskqueue.history_link_hash(
                        coalesce(c.prev_hash, ''::bytea), c.lane, c.seq, c.at, c.written_by,
                        c.entries)
                   THEN format('link %s of lane %s does not hash to what it holds', c.seq, c.lane)
           END AS problem
    FROM checked c
),
sealed AS MATERIALIZED (
    SELECT c.lane, c.seq, x.event, x.task, x.digest, x.seal
    FROM checked c
    CROSS JOIN LATERAL taskqueue.history_entries(c.entries) AS x
    WHERE NOT coalesce(c.anchor, false)
),
deleted AS MATERIALIZED (
    SELECT DISTINCT s.task
    FROM sealed s JOIN taskqueue.task_events e ON e.id = s.event
    WHERE e.event_type = 'task_deleted'
),
event_problems AS (
    SELECT s.task, s.lane, s.seq,
           CASE
               WHEN e.id IS NULL
                   THEN format('event %s is gone', s.event)
               WHEN e.task_id <> s.task
                    OR taskqueue.event_digest(e.id, e.task_id, e.at, e.event_type, e.status::text,
                                              e.attempt, e.worker_id, e.error, e.detail)
                       <> s.digest
                   THEN format('event %s (%s) was changed', s.event, e.event_type)
               WHEN s.seal IS NULL
                   THEN NULL
               WHEN t.id IS NULL AND s.task NOT IN (SELECT task FROM deleted)
                   THEN 'the task is gone without a task_deleted event'
               WHEN e.event_type = 'task_queued' AND t.id IS NOT NULL
                    AND taskqueue.document_seal(t.payload) <> s.seal
                   THEN 'its payload was changed'
               WHEN e.event_type = 'task_succeeded' AND t.id IS NOT NULL
                    AND taskqueue.document_seal(t.result) <> s.seal
                   THEN 'its result was changed'
           END AS problem
    FROM sealed s
    LEFT JOIN taskqueue.task_events e ON e.id = s.event
    LEFT JOIN taskqueue.tasks t ON t.id = s.task
),
unsealed_events AS (
    SELECT e.task_id, format('event %s (%s) is not in the chain', e.id, e.event_type) AS problem
    FROM taskqueue.task_events e, genesis g
    WHERE e.id >= g.first_event
      AND ($1::timestamptz IS NULL OR e.at >= $1::timestamptz)
      AND e.at >= coalesce((SELECT max(d.ends) FROM taskqueue.history_drops d), '-infinity')
      AND NOT EXISTS (SELECT 1 FROM sealed s WHERE s.event = e.id)
      AND NOT EXISTS (SELECT 1 FROM pending p WHERE p.id = e.id)
),
unsealed_tasks AS (
    SELECT t.id, 'the task is not in the chain' AS problem
    FROM taskqueue.tasks t, genesis g
    WHERE t.created_at >= g.started_at
      AND ($1::timestamptz IS NULL OR t.created_at >= $1::timestamptz)
      AND t.created_at >= coalesce((SELECT max(d.ends) FROM taskqueue.history_drops d), '-infinity')
      AND NOT EXISTS (SELECT 1 FROM sealed s WHERE s.task = t.id)
      AND NOT EXISTS (SELECT 1 FROM pending p WHERE p.task_id = t.id)
)
SELECT DISTINCT x.task AS task_id, p.lane, p.seq, p.problem
FROM link_problems p
CROSS JOIN LATERAL taskqueue.history_entries(p.entries) AS x
WHERE p.problem IS NOT NULL
UNION ALL
SELECT NULL, p.lane, p.seq, p.problem
FROM link_problems p WHERE p.problem IS NOT NULL
UNION ALL
SELECT task, lane, seq, problem FROM event_problems WHERE problem IS NOT NULL
UNION ALL
SELECT task_id, NULL, NULL, problem FROM unsealed_events
UNION ALL
SELECT id, NULL, NULL, problem FROM unsealed_tasks
ORDER BY 1 NULLS FIRST, 2, 3;
