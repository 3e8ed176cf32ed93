-- Least-privilege PostgreSQL roles for taskqueue.
--
--   taskqueue_migrator  owns the schema; runs `taskqueue migrate` (DDL)
--   taskqueue_api       the REST API and producers: enqueue, read, cancel, retry
--   taskqueue_worker    workers: claim, complete, renew leases, rescue
--   taskqueue_auditor   operators, dashboards and the KEDA scaler: read only
--
-- Run it as a superuser, connected to the taskqueue database (on managed
-- PostgreSQL without one: as the admin role, made a member of
-- taskqueue_migrator after the first pass so that it may secure its tables):
--
--   psql "$ADMIN_URL" -v ON_ERROR_STOP=1 --single-transaction -f deploy/postgres/roles.sql
--
-- It is idempotent, and it is run twice on a new database:
--   1. before the first `taskqueue migrate`: creates the roles and lets
--      taskqueue_migrator create the schema (the table grants are skipped);
--   2. after `taskqueue migrate` (as taskqueue_migrator), and again after every
--      upgrade that brings migrations: grants on the tables, row-level security.
-- Each pass rebuilds the grants from scratch, so a privilege this file no
-- longer gives is taken away.
--
-- No passwords here. Give each login role its own, outside version control,
-- e.g. in psql: \password taskqueue_worker   (or use certificate authentication).
--
-- No login role writes tasks or their history (taskqueue.task_events)
-- itself: every statement that changes them is a SECURITY DEFINER function
-- owned by taskqueue_migrator (the write path: a query file with a
-- `-- write-path: api, worker` line, made by `taskqueue migrate`), granted
-- to the roles its file names and nobody else. A status change without its
-- event, an event without its change, an edit or a deletion of history are
-- statements these roles cannot send.
-- Another database role that should enqueue (a service that calls
-- TaskQueue.enqueue in its own transaction) gets the API's rights by
-- membership:  GRANT taskqueue_api TO my_service;
-- (Per-role settings below are not inherited through membership: set them on
-- that role too.)

-- Wait at most this long for a table lock; DDL queued behind a long statement
-- would otherwise block every claim behind it. On a timeout, run again.
SET lock_timeout = '5s';

-- 1. The roles (cluster-wide). Created when missing; a concurrent run that
-- created one first is fine.
DO $roles$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['taskqueue_migrator', 'taskqueue_api',
                                     'taskqueue_worker', 'taskqueue_auditor']
    LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I LOGIN', role_name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
END
$roles$;

-- Per-role limits, applied at login. statement_timeout bounds a runaway
-- query; idle_in_transaction_session_timeout ends a session that holds a
-- transaction open, because an open snapshot stops vacuum from cleaning the
-- hot tasks table. No idle_session_timeout: a worker's LISTEN connection is
-- idle by design.
ALTER ROLE taskqueue_migrator SET statement_timeout = '15min';  -- index builds on big tables
ALTER ROLE taskqueue_migrator SET lock_timeout = '10s';  -- never queue DDL behind a long claim
ALTER ROLE taskqueue_migrator SET idle_in_transaction_session_timeout = '1min';

ALTER ROLE taskqueue_api SET statement_timeout = '5s';  -- an HTTP request's worth
ALTER ROLE taskqueue_api SET idle_in_transaction_session_timeout = '10s';

-- Claims and completions are batched (up to a thousand rows a statement).
ALTER ROLE taskqueue_worker SET statement_timeout = '30s';
ALTER ROLE taskqueue_worker SET idle_in_transaction_session_timeout = '30s';

ALTER ROLE taskqueue_auditor SET statement_timeout = '1min';  -- ad hoc psql queries
ALTER ROLE taskqueue_auditor SET idle_in_transaction_session_timeout = '1min';
ALTER ROLE taskqueue_auditor SET default_transaction_read_only = on;  -- belt and braces

-- 2. The database. The migrator creates the taskqueue schema, and yoyo keeps
-- its bookkeeping tables (_yoyo_migration, yoyo_lock, ...) in public.
DO $database$
BEGIN
    EXECUTE format('GRANT CONNECT, CREATE ON DATABASE %I TO taskqueue_migrator',
                   current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO taskqueue_api, taskqueue_worker, '
                   'taskqueue_auditor', current_database());
END
$database$;
GRANT USAGE, CREATE ON SCHEMA public TO taskqueue_migrator;
GRANT USAGE ON SCHEMA public TO taskqueue_api, taskqueue_worker, taskqueue_auditor;

-- 3. The tables, once `taskqueue migrate` has made them. Every statement the
-- code runs is in taskqueue/queries/*.sql; the grants below are exactly what
-- those statements need. The task_events id comes from a sequence (the
-- table is partitioned by day, migration 0008): who inserts events uses it.
DO $tables$
DECLARE
    made text;
    granted_to text[];
    role_name text;
BEGIN
    IF to_regclass('taskqueue.tasks') IS NULL THEN
        RAISE NOTICE 'taskqueue is not migrated yet: the roles are ready. Run '
                     '`taskqueue migrate` as taskqueue_migrator, then this file again.';
        RETURN;
    END IF;

    REVOKE ALL ON ALL TABLES IN SCHEMA taskqueue
        FROM taskqueue_api, taskqueue_worker, taskqueue_auditor;
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA taskqueue
        FROM taskqueue_api, taskqueue_worker, taskqueue_auditor;
    GRANT USAGE ON SCHEMA taskqueue TO taskqueue_api, taskqueue_worker, taskqueue_auditor;

    -- API: enqueue_tasks, find_tasks_by_idempotency_key, get_task, list_tasks,
    -- queue_states, task_history, cancel (also of a running task: it ends the
    -- lease and counts the queue's running tasks down), retry, bulk actions
    -- (delete only finished tasks), queue settings (a row that no longer
    -- pauses or limits anything is deleted), schedules (and triggering one by
    -- hand), queue retention, the worker list and the operator log; cancel and
    -- retry append to the finish counters (queue_counts). Tasks and their
    -- events are written only through the write path (below): here, reads.
    -- A bulk enqueue sends its rows to enqueue_copied's function as one
    -- array of taskqueue.task_input (a type: nothing to grant).
    GRANT SELECT ON taskqueue.tasks TO taskqueue_api;
    GRANT SELECT ON taskqueue.task_events TO taskqueue_api;
    GRANT SELECT, INSERT, UPDATE, DELETE ON taskqueue.queues TO taskqueue_api;
    GRANT SELECT, INSERT, UPDATE, DELETE ON taskqueue.queue_retention TO taskqueue_api;
    GRANT SELECT, INSERT ON taskqueue.queue_counts TO taskqueue_api;
    GRANT SELECT, INSERT, UPDATE, DELETE ON taskqueue.schedules TO taskqueue_api;
    GRANT SELECT, INSERT (schedule, slot, outcome, task_id, detail)
        ON taskqueue.schedule_fires TO taskqueue_api;
    GRANT SELECT ON taskqueue.workers TO taskqueue_api;
    GRANT SELECT, INSERT ON taskqueue.operator_actions TO taskqueue_api;
    -- Dashboard sign-out: revoke_session.sql, session_revoked.sql.
    IF to_regclass('taskqueue.revoked_sessions') IS NOT NULL THEN
        GRANT SELECT, INSERT, DELETE ON taskqueue.revoked_sessions TO taskqueue_api;
    END IF;
    -- Dependencies and workflows (migration 0010_workflows): graphs,
    -- depends_on, locking parents (lock_parents) and settling dependents
    -- (settle_children) happen inside the write path's enqueue, cancel and
    -- completion functions, which run as the owner: neither helper is
    -- granted to anyone. Workers release waiting tasks (reconcile_waiting).
    IF to_regclass('taskqueue.task_dependencies') IS NOT NULL THEN
        GRANT SELECT ON taskqueue.task_dependencies, taskqueue.workflows TO taskqueue_api;
        GRANT SELECT ON taskqueue.task_dependencies TO taskqueue_worker;
        REVOKE ALL ON FUNCTION taskqueue.settle_children(uuid[], boolean[], text),
                               taskqueue.reconcile_waiting(integer, text),
                               taskqueue.lock_parents(uuid[], integer[])
            FROM PUBLIC, taskqueue_api, taskqueue_worker, taskqueue_auditor;
        GRANT EXECUTE ON FUNCTION taskqueue.reconcile_waiting(integer, text)
            TO taskqueue_worker;
    END IF;
    -- Tenants (migration 0013_tenants): enqueues are admitted through
    -- admit_tasks() (SECURITY DEFINER: no role writes a counter itself);
    -- what ends or is retried appends a delta (_tenant_counts.sql), by the
    -- API (cancel, retry) and the worker (completions, rescues, expiry); the
    -- API sets quotas (set_tenant_limits.sql) and reads them; the pruner folds
    -- the deltas of tenants that stopped enqueueing (fold_tenant_counts()).
    IF to_regclass('taskqueue.tenants') IS NOT NULL THEN
        GRANT EXECUTE ON FUNCTION taskqueue.admit_tasks(text, bigint) TO taskqueue_api;
        GRANT SELECT, INSERT, UPDATE (max_queued, updated_at) ON taskqueue.tenants
            TO taskqueue_api;
        GRANT SELECT, INSERT (tenant, delta), DELETE ON taskqueue.tenant_counts
            TO taskqueue_api;
        GRANT SELECT ON taskqueue.tenants TO taskqueue_worker;
        GRANT INSERT (tenant, delta) ON taskqueue.tenant_counts TO taskqueue_worker;
        GRANT EXECUTE ON FUNCTION taskqueue.fold_tenant_counts(integer) TO taskqueue_worker;
    END IF;
    -- Tenants' rate limits on starts (migration 0017_tenant_rates): the API
    -- sets and clears them (set_tenant_rate.sql) and reads them with the
    -- quota; a worker reads which tenants are limited (queues_with_settings);
    -- a tenant's rate window is kept by the claim's write-path function alone.
    IF to_regclass('taskqueue.tenant_rates') IS NOT NULL THEN
        GRANT SELECT, INSERT (tenant, rate_limit, rate_period_seconds),
              UPDATE (rate_limit, rate_period_seconds, updated_at), DELETE
            ON taskqueue.tenant_rates TO taskqueue_api;
        GRANT SELECT ON taskqueue.tenant_rates TO taskqueue_worker;
    END IF;
    -- Claim lanes: a producer opens a task's lane and lowers its floor for
    -- a task due in the past (_open_lanes.sql).
    GRANT SELECT, INSERT (queue, type, priority), UPDATE (floor_at)
        ON taskqueue.claim_lanes TO taskqueue_api;
    -- Claim keys (migration 0014_claim_keys): a new task's sequence and
    -- concurrency keys, a tenant's claim lane (opened by producers and by
    -- schedule firings), a sequence's tail kept only by sequence_append()
    -- (SECURITY DEFINER), and the per-key admission of the governed claim.
    IF to_regclass('taskqueue.sequences') IS NOT NULL THEN
        GRANT INSERT (sequence_key, sequence_on_failure, concurrency_key)
            ON taskqueue.tasks TO taskqueue_api;
        GRANT INSERT (tenant) ON taskqueue.claim_lanes TO taskqueue_api, taskqueue_worker;
        -- Keys per tenant (0026_keys_per_tenant) take the tenants too.
        IF to_regprocedure('taskqueue.admit_keyed(text[], text[], text[], integer[], integer[])')
           IS NOT NULL THEN
            REVOKE ALL ON FUNCTION
                    taskqueue.sequence_append(text[], text[], text[], uuid[], boolean[]),
                    taskqueue.admit_keyed(text[], text[], text[], integer[], integer[])
                FROM PUBLIC, taskqueue_api, taskqueue_worker, taskqueue_auditor;
            GRANT EXECUTE ON FUNCTION
                    taskqueue.sequence_append(text[], text[], text[], uuid[], boolean[])
                TO taskqueue_api;
            GRANT EXECUTE ON FUNCTION
                    taskqueue.admit_keyed(text[], text[], text[], integer[], integer[])
                TO taskqueue_worker;
        ELSE  -- a schema before 0026_keys_per_tenant
            REVOKE ALL ON FUNCTION taskqueue.sequence_append(text[], text[], uuid[], boolean[]),
                                   taskqueue.admit_keyed(text[], text[], integer[], integer[])
                FROM PUBLIC, taskqueue_api, taskqueue_worker, taskqueue_auditor;
            GRANT EXECUTE ON FUNCTION taskqueue.sequence_append(text[], text[], uuid[], boolean[])
                TO taskqueue_api;
            GRANT EXECUTE ON FUNCTION taskqueue.admit_keyed(text[], text[], integer[], integer[])
                TO taskqueue_worker;
        END IF;
    END IF;

    -- Worker: claim_tasks, complete_tasks, extend_leases, rescue_expired, its
    -- row in the registry, and schedules: define_schedule (the ones its code
    -- defines) and fire_schedule; the finish counters (it appends to them and
    -- folds them: fold_queue_counts). Tasks it changes only through the
    -- write path; it deletes them only through taskqueue.prune_tasks()
    -- (SECURITY DEFINER: finished tasks past retention, with their
    -- task_deleted events), never reads the history, never deletes a
    -- schedule and never changes a queue's settings (only the counts a
    -- limited queue keeps).
    GRANT SELECT ON taskqueue.tasks TO taskqueue_worker;
    GRANT SELECT ON taskqueue.queues TO taskqueue_worker;
    GRANT UPDATE (running, rate_window_at, rate_window_n) ON taskqueue.queues
        TO taskqueue_worker;
    GRANT SELECT, INSERT, UPDATE, DELETE ON taskqueue.workers TO taskqueue_worker;
    GRANT SELECT ON taskqueue.queue_retention TO taskqueue_worker;
    -- UPDATE only because the fold locks the rows it folds (FOR UPDATE).
    GRANT SELECT, INSERT, UPDATE, DELETE ON taskqueue.queue_counts TO taskqueue_worker;
    REVOKE ALL ON FUNCTION taskqueue.prune_tasks(timestamptz, integer, interval, interval,
                                                 interval, interval, interval, interval, text)
        FROM PUBLIC, taskqueue_api, taskqueue_auditor;
    GRANT EXECUTE ON FUNCTION taskqueue.prune_tasks(timestamptz, integer, interval, interval,
                                                    interval, interval, interval, interval, text)
        TO taskqueue_worker;
    -- Expired tasks past retention (0011_expiry_callbacks.sql), the same way.
    IF to_regprocedure('taskqueue.prune_expired(timestamptz, integer, interval, text)')
            IS NOT NULL THEN
        REVOKE ALL ON FUNCTION taskqueue.prune_expired(timestamptz, integer, interval, text)
            FROM PUBLIC, taskqueue_api, taskqueue_auditor;
        GRANT EXECUTE ON FUNCTION taskqueue.prune_expired(timestamptz, integer, interval, text)
            TO taskqueue_worker;
    END IF;
    GRANT SELECT, INSERT, UPDATE ON taskqueue.schedules TO taskqueue_worker;
    -- Claim lanes: read by claims, opened by schedule firings, raised and
    -- checked by worker.lanes.
    GRANT SELECT, INSERT (queue, type, priority), UPDATE (floor_at, advanced_at, checked_at)
        ON taskqueue.claim_lanes TO taskqueue_worker;
    GRANT SELECT, INSERT (schedule, slot, outcome, task_id, detail)
        ON taskqueue.schedule_fires TO taskqueue_worker;

    -- The history's hash chain (history_links, history_genesis, ...) is
    -- written only by taskqueue.seal_history() (0021_sealed_by_workers),
    -- which runs as the owner: workers may call it (their ticks), and get
    -- nothing on the tables; the API role gets nothing at all. Before 0021,
    -- by the trigger function taskqueue.seal_events(), granted to no one.
    IF to_regprocedure('taskqueue.seal_history(integer)') IS NOT NULL THEN
        REVOKE ALL ON FUNCTION taskqueue.seal_history(integer)
            FROM PUBLIC, taskqueue_api, taskqueue_auditor;
        GRANT EXECUTE ON FUNCTION taskqueue.seal_history(integer) TO taskqueue_worker;
    END IF;

    -- Auditor: every table and view of the schema (tasks, task_events,
    -- task_history, the hash chain: it runs `taskqueue verify-history`),
    -- nothing else.
    GRANT SELECT ON ALL TABLES IN SCHEMA taskqueue TO taskqueue_auditor;

    -- The write path: each function to the roles its query file names
    -- (taskqueue.write_statements, kept by `taskqueue migrate`), to no one else.
    IF to_regclass('taskqueue.write_statements') IS NOT NULL THEN
        FOR made, granted_to IN SELECT function, roles FROM taskqueue.write_statements LOOP
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, taskqueue_api, '
                           'taskqueue_worker, taskqueue_auditor', made);
            FOREACH role_name IN ARRAY granted_to LOOP
                EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', made,
                               'taskqueue_' || role_name);
            END LOOP;
        END LOOP;
    END IF;

    -- The history's daily partitions (migration 0008): workers make the next
    -- days' and drop those past event retention through SECURITY DEFINER
    -- functions owned by the migrator, the only DDL any of these roles can
    -- cause; every role may list them (the API's metrics count the rows in
    -- the default partition).
    IF to_regprocedure('taskqueue.event_partitions()') IS NOT NULL THEN
        REVOKE ALL ON FUNCTION taskqueue.event_partitions(),
                               taskqueue.ensure_event_partitions(integer, timestamptz),
                               taskqueue.drop_event_partitions(timestamptz)
            FROM taskqueue_api, taskqueue_worker, taskqueue_auditor;
        GRANT EXECUTE ON FUNCTION taskqueue.ensure_event_partitions(integer, timestamptz),
                                  taskqueue.drop_event_partitions(timestamptz)
            TO taskqueue_worker;
        GRANT EXECUTE ON FUNCTION taskqueue.event_partitions()
            TO taskqueue_api, taskqueue_worker, taskqueue_auditor;
    END IF;

    -- /ready and a starting worker compare the migrations yoyo recorded with
    -- the ones shipped (a worker refuses to run on an older schema).
    IF to_regclass('public._yoyo_migration') IS NOT NULL THEN
        REVOKE ALL ON public._yoyo_migration
            FROM taskqueue_api, taskqueue_worker, taskqueue_auditor;
        GRANT SELECT ON public._yoyo_migration
            TO taskqueue_api, taskqueue_worker, taskqueue_auditor;
    END IF;

    -- Row-level security on tasks stays on, for reads only: every role reads
    -- every task. The write policies that held the API to queue and cancel
    -- and a worker to the states a run produces are gone with the write
    -- privileges they filtered: the write path's functions run as the owner,
    -- which row-level security does not apply to, and their statements make
    -- exactly those changes (cancel_task.sql, complete_tasks.sql, ...).
    ALTER TABLE taskqueue.tasks ENABLE ROW LEVEL SECURITY;
    DROP POLICY IF EXISTS taskqueue_api_enqueue ON taskqueue.tasks;
    DROP POLICY IF EXISTS taskqueue_api_cancel_retry ON taskqueue.tasks;
    DROP POLICY IF EXISTS taskqueue_api_delete_finished ON taskqueue.tasks;
    DROP POLICY IF EXISTS taskqueue_worker_fire ON taskqueue.tasks;
    DROP POLICY IF EXISTS taskqueue_worker_callback ON taskqueue.tasks;
    DROP POLICY IF EXISTS taskqueue_worker_run ON taskqueue.tasks;
    DROP POLICY IF EXISTS taskqueue_api_read ON taskqueue.tasks;
    CREATE POLICY taskqueue_api_read ON taskqueue.tasks
        FOR SELECT TO taskqueue_api USING (true);
    DROP POLICY IF EXISTS taskqueue_worker_read ON taskqueue.tasks;
    CREATE POLICY taskqueue_worker_read ON taskqueue.tasks
        FOR SELECT TO taskqueue_worker USING (true);

    DROP POLICY IF EXISTS taskqueue_auditor_read ON taskqueue.tasks;
    CREATE POLICY taskqueue_auditor_read ON taskqueue.tasks
        FOR SELECT TO taskqueue_auditor USING (true);
END
$tables$;
