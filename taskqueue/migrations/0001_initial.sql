-- The queue table, its audit trail and the psql-friendly history view.
-- depends:

CREATE SCHEMA IF NOT EXISTS taskqueue;

CREATE TYPE taskqueue.task_status AS ENUM ('queued', 'running', 'succeeded', 'failed', 'cancelled');

-- fillfactor leaves room on each page so that updates that do not touch an
-- indexed column (lease renewals) can stay HOT; the autovacuum settings are
-- per table because a queue table churns far faster than the defaults assume.
CREATE TABLE taskqueue.tasks (
    id              uuid PRIMARY KEY,  -- UUIDv7 made by the client: time ordered
    queue           text NOT NULL DEFAULT 'default',
    type            text NOT NULL,
    name            text NOT NULL DEFAULT '',
    payload         jsonb NOT NULL DEFAULT '{}'::jsonb,
    status          taskqueue.task_status NOT NULL DEFAULT 'queued',
    priority        integer NOT NULL DEFAULT 0,          -- higher runs first
    attempts        integer NOT NULL DEFAULT 0,          -- attempts started so far
    max_retries     integer NOT NULL DEFAULT 3,          -- 3 means up to 4 attempts
    timeout_seconds double precision NOT NULL DEFAULT 30,
    run_at          timestamptz NOT NULL DEFAULT now(),
    locked_by       text,
    locked_until    timestamptz,
    idempotency_key text,
    result          jsonb,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    completed_at    timestamptz,
    CONSTRAINT tasks_queue_not_empty CHECK (queue <> ''),
    CONSTRAINT tasks_type_not_empty CHECK (type <> ''),
    CONSTRAINT tasks_attempts_not_negative CHECK (attempts >= 0),
    CONSTRAINT tasks_max_retries_not_negative CHECK (max_retries >= 0),
    CONSTRAINT tasks_timeout_positive CHECK (timeout_seconds > 0),
    CONSTRAINT tasks_running_has_lease CHECK (
        status <> 'running' OR (locked_by IS NOT NULL AND locked_until IS NOT NULL))
) WITH (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);

-- The claim walks this index in claim order, one queue at a time; being
-- partial it holds only waiting rows, so its size tracks the backlog, not history.
CREATE INDEX tasks_claim_idx ON taskqueue.tasks (queue, priority DESC, run_at, id)
    WHERE status = 'queued';

-- The rescuer looks only at rows whose lease ran out. Only running rows hold
-- a lease (locked_until is cleared on every way out of running). The
-- predicate is on locked_until, not on status, on purpose: statements that
-- fence on status = 'running' (completions, lease renewals) must reach their
-- rows through the primary key, not by scanning every running row.
CREATE INDEX tasks_lease_idx ON taskqueue.tasks (locked_until)
    WHERE locked_until IS NOT NULL;

CREATE UNIQUE INDEX tasks_idempotency_key_idx ON taskqueue.tasks (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Append-only audit trail. No foreign key on purpose: it would take a
-- KEY SHARE lock on the hot task row for every event, and history is meant to
-- outlive pruned tasks.
CREATE TABLE taskqueue.task_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id    uuid NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    event_type text NOT NULL,
    status     taskqueue.task_status NOT NULL,
    attempt    integer NOT NULL,
    worker_id  text,
    error      text,
    detail     jsonb
) WITH (
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02
);

CREATE INDEX task_events_task_idx ON taskqueue.task_events (task_id, id);
CREATE INDEX task_events_at_idx ON taskqueue.task_events USING brin (at);

CREATE VIEW taskqueue.task_history AS
SELECT e.id AS event_id,
       e.task_id,
       t.name AS task_name,
       t.type AS task_type,
       t.queue,
       e.event_type,
       e.status,
       e.attempt,
       e.worker_id,
       e.error,
       e.detail,
       e.at
FROM taskqueue.task_events e
LEFT JOIN taskqueue.tasks t ON t.id = e.task_id;
