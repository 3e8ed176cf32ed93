-- Tenants: each task may belong to one (a short name; NULL for the tasks of
-- single-tenant installs, which pay nothing for any of this).
--   tasks.tenant   the tenant a task belongs to: its token stamps it, and a
--                  tenant's token reads and changes only its tenant's tasks
-- The name follows the rule of queue names (taskqueue.validation): it is a
-- filter value in URLs, a metrics label and a log field.
-- depends: 0012_session_revocations

ALTER TABLE taskqueue.tasks ADD COLUMN tenant text;
-- NOT VALID, then validated: the check is known to hold for the existing
-- rows (all NULL), and validating takes a lock that lets writes go on.
ALTER TABLE taskqueue.tasks ADD CONSTRAINT tasks_tenant_shape
    CHECK (length(tenant) <= 64 AND tenant ~ '^[A-Za-z0-9_][A-Za-z0-9_.:-]*$') NOT VALID;
ALTER TABLE taskqueue.tasks VALIDATE CONSTRAINT tasks_tenant_shape;

-- A tenant's list, counts and quota use read its rows alone.
CREATE INDEX tasks_tenant_idx ON taskqueue.tasks (tenant, id) WHERE tenant IS NOT NULL;

CREATE TABLE taskqueue.tenants (
    name       text PRIMARY KEY
               CONSTRAINT tenants_name_shape
               CHECK (length(name) <= 64 AND name ~ '^[A-Za-z0-9_][A-Za-z0-9_.:-]*$'),
    -- At most this many unfinished tasks (waiting, queued, running); NULL: no limit.
    max_queued integer CONSTRAINT tenants_max_queued_positive CHECK (max_queued >= 0),
    -- Its unfinished tasks, as of the last fold of tenant_counts.
    unfinished bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE taskqueue.tenant_counts (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant text NOT NULL,
    delta  bigint NOT NULL
) WITH (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000
);
CREATE INDEX tenant_counts_tenant_idx ON taskqueue.tenant_counts (tenant);

-- Admit p_n new unfinished tasks of p_tenant, inside the statement that
-- inserts them: the tenant's row is locked (its enqueues are admitted one
-- transaction at a time), the deltas appended since its last enqueue are
-- folded into its counter, and over max_queued the statement fails with
-- SQLSTATE TQ429, so that a batch is refused whole. A tenant without a row
-- has no limit and is not counted. Returns p_n. SECURITY DEFINER: producers
-- (the API's role) may call it but never write a counter themselves.
CREATE FUNCTION taskqueue.admit_tasks(p_tenant text, p_n bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_limit integer;
    v_unfinished bigint;
BEGIN
    SELECT max_queued, unfinished INTO v_limit, v_unfinished
    FROM taskqueue.tenants WHERE name = p_tenant FOR UPDATE;
    IF NOT FOUND THEN
        RETURN p_n;
    END IF;
    WITH folded AS (
        DELETE FROM taskqueue.tenant_counts WHERE tenant = p_tenant RETURNING delta
    )
    SELECT v_unfinished + coalesce(sum(delta), 0) INTO v_unfinished FROM folded;
    IF v_limit IS NOT NULL AND v_unfinished + p_n > v_limit THEN
        RAISE EXCEPTION 'tenant % is at its limit of % unfinished tasks', p_tenant, v_limit
            USING ERRCODE = 'TQ429',
                  DETAIL = format('unfinished=%s asked=%s max_queued=%s',
                                  v_unfinished, p_n, v_limit);
    END IF;
    UPDATE taskqueue.tenants SET unfinished = v_unfinished + p_n WHERE name = p_tenant;
    RETURN p_n;
END
$$;

REVOKE ALL ON FUNCTION taskqueue.admit_tasks(text, bigint) FROM PUBLIC;

-- Fold the deltas of up to p_limit tenants into their counters, for the
-- pruner: a tenant that stops enqueueing (admit_tasks() folds on every
-- enqueue) still has its deltas folded, so tenant_counts stays a few rows per
-- tenant. A tenant whose row an enqueue holds is skipped: that enqueue folds
-- them itself. SECURITY DEFINER: the worker's role calls it but writes no
-- counter itself. Returns how many delta rows went.
CREATE FUNCTION taskqueue.fold_tenant_counts(p_limit integer)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH taken AS MATERIALIZED (
        SELECT t.name
        FROM taskqueue.tenants t
        WHERE EXISTS (SELECT 1 FROM taskqueue.tenant_counts c WHERE c.tenant = t.name)
        ORDER BY t.name
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ),
    gone AS (
        DELETE FROM taskqueue.tenant_counts c
        USING taken
        WHERE c.tenant = taken.name
        RETURNING c.tenant, c.delta
    ),
    folded AS (
        UPDATE taskqueue.tenants t
        SET unfinished = t.unfinished + g.n
        FROM (SELECT tenant, sum(delta) AS n FROM gone GROUP BY tenant) g
        WHERE t.name = g.tenant
    )
    SELECT count(*) FROM gone;
$$;

REVOKE ALL ON FUNCTION taskqueue.fold_tenant_counts(integer) FROM PUBLIC;

-- Tasks settle_children() or reconcile_waiting() cancel end like any
-- other: 0011_expiry_callbacks' version, and their tenants' counters.
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
    -- Cancelled tasks are unfinished no more: their tenants' counters (0013_tenants).
    INSERT INTO taskqueue.tenant_counts (tenant, delta)
    SELECT t.tenant, -count(*)
    FROM taskqueue.tasks t
    WHERE t.id = ANY (p_ids) AND t.tenant IS NOT NULL
      AND EXISTS (SELECT 1 FROM taskqueue.tenants n WHERE n.name = t.tenant)
    GROUP BY t.tenant;
END
$$;
