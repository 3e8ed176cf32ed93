-- The end of both claims (claim_tasks.sql, claim_governed_tasks.sql): the
-- rows of their candidates CTE become running under this worker's lease,
-- each with its task_started event. A task with parents (dependencies) whose
-- type's handler reads them (registered with parent_results=True; $6) also
-- gets their outcomes, for ctx.parent_results; the CASE keeps every other
-- task from reading anything more (a lookup per parent per claimed row was
-- a third of a graph's drain). It ends without a comma: what follows is
-- the final SELECT, or (governed) ", counted AS (...)".
--   $3 text   worker id, recorded as locked_by
--   $4 float8 lease length in seconds; locked_until comes from the database clock
--   $6 text[] task types whose handlers read their parents' results
claimed AS (
    UPDATE taskqueue.tasks AS t
    SET status = 'running',
        attempts = t.attempts + 1,
        locked_by = $3,
        locked_until = now() + make_interval(secs => $4),
        started_at = now()
    -- = ANY(ARRAY(...)) keeps the update on the primary key index; a join
    -- here may be planned as a hash join over a sequential scan of the table.
    WHERE t.id = ANY (ARRAY(SELECT id FROM candidates))
    RETURNING t.id, t.queue, t.type, t.payload::text AS payload, t.priority, t.attempts,
              t.max_retries, t.timeout_seconds, t.run_at, t.traceparent, t.tenant,
              t.callback IS NOT NULL AS has_callback,
              CASE WHEN t.parents > 0 AND t.type = ANY ($6::text[]) THEN (
                  SELECT json_agg(json_build_object(
                             'id', d.parent_id, 'ref', p.workflow_ref, 'status', p.status,
                             'result', p.result, 'error', p.last_error))::text
                  FROM taskqueue.task_dependencies d
                  -- LIMIT keeps this a lookup by primary key per parent, whatever
                  -- the statistics of a graph inserted a moment ago say.
                  LEFT JOIN LATERAL (SELECT * FROM taskqueue.tasks p
                                     WHERE p.id = d.parent_id LIMIT 1) p ON true
                  WHERE d.child_id = t.id) END AS parent_results
),
started_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, worker_id)
    SELECT id, 'task_started', 'running', attempts, $3 FROM claimed
)
