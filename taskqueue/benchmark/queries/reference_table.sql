-- taskqueue bench: the table the commit-ceiling reference inserts into; the
-- same shape as a minimal task row (uuid key, jsonb payload).
CREATE TABLE IF NOT EXISTS taskqueue.bench_reference (id uuid PRIMARY KEY, payload jsonb NOT NULL);
