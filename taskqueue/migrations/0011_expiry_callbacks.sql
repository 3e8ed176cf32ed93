-- Expiry (TTL) and result callbacks on a task:
--   expires_at  a task not started by then never runs: the claim that finds
--               it, or the worker's expiry sweep, ends it `expired`
--               (task_expired event). NULL for most tasks, and then costs
--               nothing: the sweep's index holds only queued rows that have one.
--   callback    {"url": ..., "events": [...]}: when the task ends in one of
--               those statuses, the statement that ends it also enqueues a
--               `taskqueue.callback` task that POSTs the outcome (signed).
-- queue_counts counts expired tasks like the other finishes; uuid_v7() makes
-- the ids of tasks a statement enqueues by itself (callback deliveries), time
-- ordered like the ones clients make (pruning walks ids as creation times).
-- cascade_ended() (0010_workflows) queues the callbacks of the tasks a
-- failed parent's dependency cancels.
-- depends: 0011_expired_status

ALTER TABLE taskqueue.tasks
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN callback jsonb;

CREATE INDEX tasks_expiry_idx ON taskqueue.tasks (expires_at)
    WHERE status = 'queued' AND expires_at IS NOT NULL;

-- Expired tasks are pruned oldest first (like failed and cancelled ones,
-- tasks_unhappy_finished_idx) and counted by the dashboard through this.
CREATE INDEX tasks_expired_idx ON taskqueue.tasks (completed_at) WHERE status = 'expired';

ALTER TABLE taskqueue.queue_counts ADD COLUMN expired bigint NOT NULL DEFAULT 0;

-- A UUIDv7 (RFC 9562) from the clock: 48 bits of Unix milliseconds, then
-- random bits, with version 7 and the RFC variant. PostgreSQL 18 has
-- uuidv7(); production also runs on 15.
CREATE FUNCTION taskqueue.uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT encode(
    set_bit(set_bit(
        overlay(uuid_send(gen_random_uuid())
                PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)
                                  FROM 3)
                FROM 1 FOR 6),
        52, 1), 53, 1),
    'hex')::uuid
$$;

-- Expired tasks past retention (their queue's retain_cancelled, else the
-- default given) are deleted, oldest first, each with a task_deleted event.
-- SECURITY DEFINER for the reason prune_tasks() is: the worker role may
-- delete no task otherwise.
CREATE FUNCTION taskqueue.prune_expired(
    p_now timestamptz,   -- NULL: now() (tests pin it)
    p_limit integer,
    p_retain interval,   -- the default retention (TASKQUEUE_RETAIN_CANCELLED)
    p_worker text
) RETURNS bigint
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
WITH doomed AS MATERIALIZED (
    SELECT t.id
    FROM taskqueue.tasks t
    LEFT JOIN taskqueue.queue_retention r ON r.queue = t.queue
    WHERE t.status = 'expired'
      AND t.completed_at < coalesce(p_now, now()) - coalesce(r.retain_cancelled, p_retain)
    ORDER BY t.completed_at
    LIMIT p_limit
    FOR UPDATE OF t SKIP LOCKED
),
gone AS (
    DELETE FROM taskqueue.tasks t
    WHERE t.id IN (SELECT id FROM doomed) AND t.status = 'expired'
    RETURNING t.id, t.status, t.attempts
),
gone_events AS (
    INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, worker_id, detail)
    SELECT id, 'task_deleted', status, attempts, p_worker, '{"reason": "retention"}'::jsonb
    FROM gone
)
SELECT count(*) FROM gone;
$$;

REVOKE ALL ON FUNCTION taskqueue.prune_expired(timestamptz, integer, interval, text) FROM PUBLIC;

-- Tasks that settle_children() or reconcile_waiting() cancel (a parent
-- failed, was cancelled or expired) end like any other: besides telling
-- their result waiters (as 0010_workflows' version does), their callbacks
-- are queued, as _task_ended.sql does for the statements that end tasks (a
-- function cannot include a query fragment). Their lanes only have to exist:
-- they are due now, below no lane's floor.
CREATE OR REPLACE FUNCTION taskqueue.cascade_ended(p_ids uuid[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    queued integer;
BEGIN
    PERFORM pg_notify('taskqueue_done', string_agg(id::text, ','))
    FROM (SELECT id, (row_number() OVER () - 1) / 200 AS chunk
          FROM unnest(p_ids) AS u(id)) d
    GROUP BY chunk;
    WITH callback_rows AS MATERIALIZED (
        SELECT taskqueue.uuid_v7() AS id, t.queue, 'taskqueue.callback'::text AS type,
               0 AS priority, now() AS run_at, t.id AS task_id,
               'callback: ' || t.status::text || ' ' || t.id::text AS name,
               jsonb_build_object(
                   'url', t.callback->>'url',
                   'body', jsonb_build_object(
                       'id', t.id,
                       'status', t.status::text,
                       'result', t.result,
                       'error', t.last_error,
                       'attempts', t.attempts,
                       'workflow_id', t.workflow_id,
                       'finished_at', now())) AS payload
        FROM taskqueue.tasks t
        WHERE t.id = ANY (p_ids) AND t.callback IS NOT NULL
          AND t.callback->'events' ? t.status::text
    ),
    callbacks_queued AS (
        INSERT INTO taskqueue.tasks (id, queue, type, name, payload, priority, max_retries,
                                     timeout_seconds, run_at)
        SELECT id, queue, type, name, payload, priority, 12, 30, run_at FROM callback_rows
        RETURNING id, pg_notify('taskqueue', queue) AS notified
    ),
    callbacks_queued_events AS (
        INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, detail)
        SELECT id, 'task_queued', 'queued', 0, jsonb_build_object('callback_for', task_id)
        FROM callback_rows
    ),
    lanes_opened AS (
        INSERT INTO taskqueue.claim_lanes (queue, type, priority)
        SELECT DISTINCT queue, type, priority FROM callback_rows
        ON CONFLICT DO NOTHING
    )
    SELECT count(*) INTO queued FROM callbacks_queued;
END
$$;
