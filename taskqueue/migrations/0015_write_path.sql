-- The write path (issue 21): the deploy roles no longer write tasks or their
-- history themselves. Each statement file with a `-- write-path:` line
-- becomes a SECURITY DEFINER function, made by `taskqueue migrate` after the
-- migrations (store/write_path.py); this table lists them, with the roles
-- each one is granted to (deploy/postgres/roles.sql reads it).
-- depends: 0014_claim_keys

CREATE TABLE taskqueue.write_statements (
    name     text PRIMARY KEY,          -- queries/<name>.sql
    function text NOT NULL,             -- its function, as regprocedure text
    roles    text[] NOT NULL            -- taskqueue_<role> may run it
);

-- A new task as a producer gives it (the columns of store.task_rows.
-- COPY_COLUMNS; status, attempts, lease and result are never given): a
-- large batch is sent as one array of these, in binary, to enqueue_copied.sql
-- (a write-path function), rather than COPYed into taskqueue.tasks, which
-- the deploy roles may not write.
CREATE TYPE taskqueue.task_input AS (
    id                  uuid,
    queue               text,
    type                text,
    name                text,
    payload             jsonb,
    priority            integer,
    max_retries         integer,
    timeout_seconds     double precision,
    idempotency_key     text,
    traceparent         text,
    expires_at          timestamptz,
    callback            jsonb,
    tenant              text,
    sequence_key        text,
    sequence_on_failure text,
    concurrency_key     text
);
