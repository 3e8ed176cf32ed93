-- taskqueue bench: one single-row INSERT, its own transaction (the reference).
--   $1 uuid, $2 jsonb
INSERT INTO taskqueue.bench_reference (id, payload) VALUES ($1, $2);
