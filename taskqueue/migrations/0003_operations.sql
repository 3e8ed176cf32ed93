-- Operating the queue: settings per queue (pause, a concurrency limit and a
-- rate limit, enforced inside the claim statement), the worker registry,
-- the log of operator actions, and an index for the dead-letter view.
-- depends: 0002_claim_by_type

-- A queue without a row here is unpaused and unlimited. Only queues with a
-- limit are locked by claims (FOR UPDATE on their row serialises the workers
-- claiming from that queue, so a limit holds across every worker and host);
-- claims of other queues never touch this table beyond reading it.
CREATE TABLE taskqueue.queues (
    name                text PRIMARY KEY,
    paused              boolean NOT NULL DEFAULT false,
    concurrency_limit   integer,
    rate_limit          integer,
    rate_period_seconds double precision,
    -- How many of the queue's tasks are running, kept while
    -- concurrency_limit is set: raised by claims, lowered by completions,
    -- rescues and cancels, recounted under the row lock when a limit is set.
    running             integer NOT NULL DEFAULT 0,
    -- The rolling rate window: when each recent claim started tasks of this
    -- queue, and how many (entries older than the period are dropped).
    rate_window_at      timestamptz[] NOT NULL DEFAULT '{}',
    rate_window_n       integer[] NOT NULL DEFAULT '{}',
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT queues_concurrency_limit_positive CHECK (concurrency_limit >= 1),
    CONSTRAINT queues_rate_limit_positive CHECK (rate_limit >= 1 AND rate_period_seconds > 0),
    CONSTRAINT queues_rate_limit_whole CHECK ((rate_limit IS NULL) = (rate_period_seconds IS NULL)),
    CONSTRAINT queues_running_not_negative CHECK (running >= 0)
);

-- Every worker registers here at start and heartbeats while it runs; a row
-- whose heartbeat is three intervals old belongs to a worker that is lost.
CREATE TABLE taskqueue.workers (
    id                text PRIMARY KEY,
    host              text NOT NULL,
    pid               integer NOT NULL,
    queues            text[] NOT NULL,
    types             text[] NOT NULL,
    concurrency       integer NOT NULL,
    version           text NOT NULL,
    heartbeat_seconds double precision NOT NULL,
    started_at        timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at timestamptz NOT NULL DEFAULT now(),
    in_flight         integer NOT NULL DEFAULT 0,
    state             text NOT NULL DEFAULT 'running',
    stopped_at        timestamptz,
    CONSTRAINT workers_state CHECK (state IN ('running', 'stopping', 'stopped'))
);

-- Append-only: who paused, resumed, limited, bulk-changed or cancelled what.
CREATE TABLE taskqueue.operator_actions (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     timestamptz NOT NULL DEFAULT now(),
    actor  text NOT NULL,
    action text NOT NULL,
    scope  jsonb NOT NULL,
    result jsonb
);

-- How the dead-letter view groups failures: the error's first line, with
-- what varies from task to task (ids, numbers, quoted values, long hex
-- tokens) masked, so that "order 17 not found" and "order 42 not found" are
-- one group. Bulk actions filter by the same text.
CREATE FUNCTION taskqueue.error_group(error text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN left(
    regexp_replace(
        regexp_replace(
            regexp_replace(
                regexp_replace(
                    split_part(coalesce(error, ''), E'\n', 1),
                    '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}',
                    '<id>', 'g'),
                '''[^'']*''|"[^"]*"', '<value>', 'g'),
            '\m[0-9a-fA-F]{16,}\M', '<hex>', 'g'),
        '\d+(\.\d+)?', '<n>', 'g'),
    300);

-- The dead-letter view and bulk actions on failed tasks read only failed
-- rows; being partial, the index costs nothing until a task fails for good.
CREATE INDEX tasks_failed_idx ON taskqueue.tasks (queue, type, completed_at)
    WHERE status = 'failed';
