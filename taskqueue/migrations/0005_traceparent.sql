-- Tracing: the W3C traceparent of the span that enqueued a task, so that the
-- worker's execution span can join that trace. NULL unless the producer runs
-- OpenTelemetry (taskqueue[otel]) with a span current.
-- depends: 0004_schedules 0003_operations

-- Nullable without a default: adding it rewrites nothing, and a NULL costs
-- the hot rows no space beyond the null bitmap they already have.
ALTER TABLE taskqueue.tasks ADD COLUMN traceparent text;
