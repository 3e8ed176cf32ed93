"""OpenTelemetry glue (``pip install 'taskqueue[otel]'``).

With OpenTelemetry installed, ``enqueue`` stores the W3C ``traceparent`` of
the span current at the call (none, when no span is current: a NULL, and
nothing more sent), and a worker whose process has a tracer provider
configured runs each attempt in a ``taskqueue.execute`` span: a child of the
enqueuing span, with a link to it, carrying the task's id, type, queue,
attempt and outcome. Without the extra this module imports nothing and every
function here answers None at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from taskqueue.observability.outcomes import FAILURES, outcome_label

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the otel extra is not installed
    INSTALLED = False
else:
    INSTALLED = True
    _PROPAGATOR = TraceContextTextMapPropagator()

if TYPE_CHECKING:
    import asyncio

    from taskqueue.models import ClaimedTask, Outcome

SPAN_NAME = "taskqueue.execute"


class Attempted(Protocol):
    """What the tracer needs of an attempt: its task (the worker's
    ``Attempt`` is one; the tracer does not need to know it)."""

    @property
    def task(self) -> ClaimedTask: ...


AttemptT = TypeVar("AttemptT", bound=Attempted)


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, or None (no OpenTelemetry,
    or no span current)."""
    if not INSTALLED or not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def execution_tracer(worker_id: str) -> ExecutionTracer | None:
    """A tracer for a worker's attempts when this process has a tracer
    provider set (the SDK, or auto-instrumentation), else None: with the
    API alone every span would be a no-op, not worth a cent per task."""
    if not INSTALLED:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return ExecutionTracer(worker_id, provider.get_tracer("taskqueue"))


class ExecutionTracer:
    def __init__(self, worker_id: str, tracer: trace.Tracer) -> None:
        self._worker_id = worker_id
        self._tracer = tracer

    async def execute(
        self,
        execute: Callable[
            [AttemptT, asyncio.Task[Any], asyncio.AbstractEventLoop], Awaitable[Outcome]
        ],
        attempt: AttemptT,
        runner: asyncio.Task[Any],
        loop: asyncio.AbstractEventLoop,
    ) -> Outcome:
        """``execute(attempt, runner, loop)`` inside a ``taskqueue.execute``
        span, a child of the span that enqueued the task and linked to it
        (a new trace when it has none)."""
        task = attempt.task
        parent = otel_context.Context()  # never the worker's own context
        links: list[trace.Link] = []
        if task.traceparent is not None:
            enqueued = _PROPAGATOR.extract({"traceparent": task.traceparent})
            span_context = trace.get_current_span(enqueued).get_span_context()
            if span_context.is_valid:
                parent = enqueued
                links.append(trace.Link(span_context))
        with self._tracer.start_as_current_span(
            SPAN_NAME,
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            links=links,
            attributes={
                "taskqueue.task_id": str(task.id),
                "taskqueue.type": task.type,
                "taskqueue.queue": task.queue,
                "taskqueue.attempt": task.attempt,
                "taskqueue.worker_id": self._worker_id,
                "messaging.system": "taskqueue",
                "messaging.operation.type": "process",
                "messaging.destination.name": task.queue,
                "messaging.message.id": str(task.id),
            },
        ) as span:
            outcome = await execute(attempt, runner, loop)
            label = outcome_label(task, outcome)
            span.set_attribute("taskqueue.outcome", label)
            if label in FAILURES:
                span.set_status(trace.StatusCode.ERROR, outcome.error)
            return outcome
