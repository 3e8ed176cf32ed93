"""The old home of ``taskqueue.observability.tracing``, kept so that existing
imports go on working."""

from taskqueue.observability.tracing import (
    INSTALLED,
    SPAN_NAME,
    ExecutionTracer,
    current_traceparent,
    execution_tracer,
)

__all__ = [
    "INSTALLED",
    "SPAN_NAME",
    "ExecutionTracer",
    "current_traceparent",
    "execution_tracer",
]
