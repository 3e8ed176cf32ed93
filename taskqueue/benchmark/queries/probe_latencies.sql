-- taskqueue bench: the pickup latencies the bench_probe handler stored as its result.
SELECT (result ->> 'latency_ns')::bigint AS latency_ns
FROM taskqueue.tasks
WHERE type = 'bench_probe' AND status = 'succeeded';
