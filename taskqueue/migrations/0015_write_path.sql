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

-- Bulk enqueue COPYs here, not into taskqueue.tasks: enqueue_copied.sql (a
-- write-path function) moves the rows into tasks with their events in the
-- same transaction. Unlogged: a row lives for one transaction, and a crash
-- loses only batches that had not committed anyway. Only the columns a
-- producer gives; status, attempts, lease and result are never staged.
CREATE UNLOGGED TABLE taskqueue.copied_tasks AS
SELECT id, queue, type, name, payload, priority, max_retries, timeout_seconds,
       idempotency_key, traceparent, expires_at, callback, tenant, sequence_key,
       sequence_on_failure, concurrency_key
FROM taskqueue.tasks WITH NO DATA;
ALTER TABLE taskqueue.copied_tasks ADD PRIMARY KEY (id);
