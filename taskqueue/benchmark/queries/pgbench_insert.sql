-- taskqueue bench: pgbench's transaction for the commit-ceiling reference:
-- one single-row INSERT into the reference table, its own transaction.
INSERT INTO taskqueue.bench_reference (id, payload) VALUES (gen_random_uuid(), '{"i": 1}');
