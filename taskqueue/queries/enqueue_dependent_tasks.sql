-- write-path: api
-- write-path-requires: 0026_keys_per_tenant
-- Insert tasks that depend on other tasks, their dependencies and (for a
-- workflow) the workflow, in one statement. Parents are either tasks of this
-- batch (a workflow's graph) or tasks that exist already (depends_on by id).
-- Tasks without dependencies take enqueue_tasks.sql, which this does not slow.
--   $1 json: the tasks, as enqueue_tasks.sql's $1 (expiry, callback and
--      tenant included), plus workflow_id and workflow_ref
--   $2 json: the dependencies, an array of {child, parent, on_parent_failure}
--   $3 uuid: the workflow to create (NULL: none)
--   $4 text: its name
-- Existing parents are locked (in id order) and their children count is
-- raised while their status is read (taskqueue.lock_parents), so a parent
-- either finishes before this commits (seen here as finished) or after (its
-- finishing statement waits for the lock, then settles this child: see
-- settle_children(), whose fresh snapshot sees this commit).
-- A task waits (status waiting, waiting_on = n) for each parent that is not
-- finished; a parent that already succeeded, or is gone, counts as done; one
-- that failed, was cancelled or expired counts as done for an 'run'
-- dependency and cancels the task for a 'cancel' one (event task_cancelled
-- after its task_queued, naming the parent). Each task's task_queued event
-- records the status it starts in. One NOTIFY for the tasks queued now.
-- Tasks with a sequence_key (any batch that has one comes here) get one more
-- parent: the task before them in their (queue, tenant, sequence_key): the
-- previous one in this batch or else the key's tail (taskqueue.sequences,
-- locked per key by sequence_append(), so concurrent producers of a key
-- form one chain). A key is its tenant's (0026_keys_per_tenant). Keyless
-- rows of such a batch pay nothing for it.
-- Returns one row: the ids inserted, statement_timestamp(), and the ids that
-- started waiting and that were cancelled.
WITH input AS (
    -- ord: the task's place in the batch (a sequence's order within it).
    SELECT i.*, e.ord
    FROM json_array_elements($1::json) WITH ORDINALITY AS e(doc, ord)
    CROSS JOIN LATERAL json_to_record(e.doc)
        AS i(id uuid, queue text, type text, name text, payload jsonb, priority int,
             max_retries int, timeout_seconds float8, run_at timestamptz,
             delay_us bigint, idempotency_key text, traceparent text,
             expires_at timestamptz, ttl_us bigint, callback jsonb, tenant text,
             sequence_key text, sequence_on_failure text, concurrency_key text,
             workflow_id uuid, workflow_ref text)
),
sequenced AS MATERIALIZED (
    -- Tasks of a sequence, each with the one before it in this batch.
    SELECT id, queue, coalesce(tenant, '') AS tenant, sequence_key, ord,
           sequence_on_failure = 'block' AS blocks,
           lag(id) OVER w AS prev_id,
           lag(sequence_on_failure = 'block') OVER w AS prev_blocks
    FROM input i
    WHERE sequence_key IS NOT NULL
      -- A task whose idempotency key is taken is not inserted: it must not
      -- become the key's tail either.
      AND (i.idempotency_key IS NULL
           OR NOT EXISTS (SELECT FROM taskqueue.tasks t
                          WHERE t.idempotency_key = i.idempotency_key
                            AND coalesce(t.tenant, '') = coalesce(i.tenant, '')))
    WINDOW w AS (PARTITION BY queue, coalesce(tenant, ''), sequence_key ORDER BY ord)
),
old_tails AS MATERIALIZED (
    -- The first task of each key in this batch follows the key's tail, and
    -- the last becomes the tail (taskqueue.sequence_append locks the key).
    SELECT o.*
    FROM (SELECT array_agg(queue) AS qs, array_agg(tenant) AS ts, array_agg(sequence_key) AS ks,
                 array_agg(id) AS ids, array_agg(coalesce(blocks, false)) AS bs
          FROM (SELECT DISTINCT ON (queue, tenant, sequence_key) queue, tenant, sequence_key,
                       id, blocks
                FROM sequenced ORDER BY queue, tenant, sequence_key, ord DESC) last) x
    CROSS JOIN LATERAL taskqueue.sequence_append(x.qs, x.ts, x.ks, x.ids, x.bs) o
    WHERE x.qs IS NOT NULL
),
edges AS (
    SELECT *
    FROM json_to_recordset($2::json) AS e(child uuid, parent uuid, on_parent_failure text)
    UNION ALL
    -- A sequence is a chain of dependencies: a finally failed predecessor
    -- releases its successor ('run'), or holds it when it blocks ('hold').
    SELECT s.id, coalesce(s.prev_id, t.tail_id),
           CASE WHEN coalesce(s.prev_blocks, t.tail_blocks) THEN 'hold' ELSE 'run' END
    FROM sequenced s
    LEFT JOIN old_tails t
      ON (t.queue, t.tenant, t.key) = (s.queue, s.tenant, s.sequence_key)
    WHERE coalesce(s.prev_id, t.tail_id) IS NOT NULL
      AND NOT EXISTS (SELECT FROM json_to_recordset($2::json) AS x(child uuid, parent uuid)
                      WHERE x.child = s.id AND x.parent = coalesce(s.prev_id, t.tail_id))
),
old_parents AS MATERIALIZED (
    -- Only parents outside this batch exist already (the batch's are not
    -- inserted yet, so this statement cannot see them).
    SELECT l.id, l.status
    FROM (SELECT array_agg(parent) AS ids, array_agg(n) AS ns
          FROM (SELECT parent, count(*)::int AS n FROM edges
                WHERE parent NOT IN (SELECT id FROM input)
                GROUP BY parent) g) x
    CROSS JOIN LATERAL taskqueue.lock_parents(x.ids, x.ns) l
    WHERE x.ids IS NOT NULL
),
judged AS (
    SELECT e.child, e.parent,
           (e.parent IN (SELECT id FROM input)
            OR o.status IN ('waiting', 'queued', 'running')
            OR (o.status = 'failed' AND e.on_parent_failure = 'hold')) AS pending,
           (o.status IN ('failed', 'cancelled', 'expired') AND e.on_parent_failure = 'cancel')
               AS dooming
    FROM edges e
    LEFT JOIN old_parents o ON o.id = e.parent
),
per_child AS (
    SELECT child AS id,
           count(*) FILTER (WHERE pending)::int AS pending,
           count(*)::int AS parents,
           min(parent::text) FILTER (WHERE dooming)::uuid AS doomed_by
    FROM judged
    GROUP BY child
),
inserted AS (
    INSERT INTO taskqueue.tasks (id, queue, type, name, payload, priority, max_retries,
                                 timeout_seconds, run_at, idempotency_key, traceparent,
                                 expires_at, callback, tenant,
                                 sequence_key, sequence_on_failure, concurrency_key,
                                 status, waiting_on, parents, children, workflow_id, workflow_ref,
                                 completed_at)
    SELECT i.id, i.queue, i.type, i.name, i.payload, i.priority, i.max_retries,
           i.timeout_seconds,
           coalesce(i.run_at, statement_timestamp() + i.delay_us * interval '1 microsecond'),
           i.idempotency_key, i.traceparent,
           coalesce(i.expires_at, statement_timestamp() + i.ttl_us * interval '1 microsecond'),
           i.callback, i.tenant, i.sequence_key, i.sequence_on_failure, i.concurrency_key,
           CASE WHEN c.doomed_by IS NOT NULL THEN 'cancelled'
                WHEN c.pending > 0 THEN 'waiting'
                ELSE 'queued' END::taskqueue.task_status,
           CASE WHEN c.doomed_by IS NULL THEN coalesce(c.pending, 0) ELSE 0 END,
           coalesce(c.parents, 0),
           coalesce(k.n, 0),
           i.workflow_id, i.workflow_ref,
           CASE WHEN c.doomed_by IS NOT NULL THEN statement_timestamp() END
    FROM input i
    LEFT JOIN per_child c ON c.id = i.id
    LEFT JOIN (SELECT parent, count(*)::int AS n FROM edges GROUP BY parent) k ON k.parent = i.id
    -- Any unique index: the idempotency key's, which is (tenant, key) since
    -- 0027_idempotency_per_tenant and (key) before it (ids never collide).
    ON CONFLICT DO NOTHING
    RETURNING id, queue, type, priority, run_at, status, tenant, workflow_id
),
workflow AS (
    -- With the ids of its tasks (what get_workflow.sql reads them by): the
    -- ones inserted, not those an idempotency key had taken already.
    INSERT INTO taskqueue.workflows (id, name, task_ids)
    SELECT $3::uuid, coalesce($4::text, ''),
           coalesce((SELECT array_agg(id ORDER BY id) FROM inserted
                     WHERE workflow_id = $3::uuid), '{}')
    WHERE $3::uuid IS NOT NULL
),
admitted AS (
    -- Each tenant's quota (taskqueue.admit_tasks, 0013_tenants), in name
    -- order (the order its rows are locked in): over it, the statement fails
    -- (SQLSTATE TQ429) and the batch is refused whole. No call without tenants.
    SELECT taskqueue.admit_tasks(tenant, n) AS n
    FROM (SELECT tenant, count(*) AS n FROM inserted
          WHERE tenant IS NOT NULL AND status <> 'cancelled'  -- cancelled at once: finished
          GROUP BY tenant ORDER BY tenant) AS per_tenant
),
dependencies AS (
    INSERT INTO taskqueue.task_dependencies (parent_id, child_id, on_parent_failure)
    SELECT e.parent, e.child, coalesce(e.on_parent_failure, 'cancel')
    FROM edges e
    WHERE e.child IN (SELECT id FROM inserted)
),
lane_rows AS (
    SELECT queue, type, priority, run_at, tenant FROM inserted WHERE status = 'queued'
),
-- include: _open_lanes.sql
,
queued_events AS (
    -- task_queued first, then (for a task a failed parent cancels) task_cancelled.
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, detail)
    SELECT ev.task_id, ev.event_type, ev.status::taskqueue.task_status, 0, ev.detail
    FROM (
        SELECT id AS task_id, 'task_queued' AS event_type,
               CASE WHEN status = 'cancelled' THEN 'waiting' ELSE status::text END AS status,
               NULL::jsonb AS detail, 1 AS step
        FROM inserted
        UNION ALL
        SELECT n.id, 'task_cancelled', 'cancelled',
               jsonb_build_object('was', 'waiting', 'parent', c.doomed_by,
                                  'reason', 'parent_failed'), 2
        FROM inserted n JOIN per_child c ON c.id = n.id
        WHERE n.status = 'cancelled'
    ) ev
    ORDER BY ev.task_id, ev.step
),
counted AS (
    INSERT INTO taskqueue.queue_counts (queue, cancelled)
    SELECT queue, count(*) FROM inserted WHERE status = 'cancelled' GROUP BY queue
),
due_queues AS (
    SELECT string_agg(DISTINCT queue, ',') AS queues
    FROM inserted WHERE status = 'queued' AND run_at <= statement_timestamp()
)
SELECT (SELECT array_agg(id) FROM inserted) AS ids, statement_timestamp() AS created_at,
       (SELECT sum(n) FROM admitted) AS admitted,
       (SELECT array_agg(id) FROM inserted WHERE status = 'waiting') AS waiting_ids,
       (SELECT array_agg(id) FROM inserted WHERE status = 'cancelled') AS cancelled_ids,
       (SELECT pg_notify('taskqueue', CASE WHEN length(queues) > 7000 THEN '*' ELSE queues END)
               IS NOT NULL
        FROM due_queues WHERE queues IS NOT NULL) AS notified;
