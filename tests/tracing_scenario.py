"""Tracing scenarios, each in a process of its own (OpenTelemetry's tracer
provider is set once per process): ``python -m tests.tracing_scenario DSN
MODE`` prints what happened as JSON.

- ``traced``: the SDK with its in-memory exporter; tasks enqueued inside a
  span and outside any, run by an in-process worker.
- ``absent``: OpenTelemetry made impossible to import, as without the extra."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


async def traced(dsn: str) -> dict[str, Any]:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    from taskqueue.client import TaskQueue
    from tests.helpers import all_in_status, running_worker, wait_until

    async with await TaskQueue.connect(dsn) as tq:
        with trace.get_tracer("app").start_as_current_span("handle request") as request:
            inside = await tq.enqueue("noop")
            failing = await tq.enqueue("fail", {"message": "no"}, max_retries=0)
        outside = await tq.enqueue("noop")
        stored = {
            str(row["id"]): row["traceparent"]
            for row in await tq.pool.fetch("SELECT id, traceparent FROM taskqueue.tasks")
        }
        async with running_worker(dsn):
            await wait_until(lambda: all_in_status(tq.pool, [inside.id, outside.id], "succeeded"))
            await wait_until(lambda: all_in_status(tq.pool, [failing.id], "failed"))
    context = request.get_span_context()
    return {
        "request": {"trace_id": context.trace_id, "span_id": context.span_id},
        "tasks": {"inside": str(inside.id), "failing": str(failing.id), "outside": str(outside.id)},
        "stored": stored,
        "spans": [
            {
                "name": span.name,
                "kind": span.kind.name,
                "trace_id": span.context.trace_id,
                "span_id": span.context.span_id,
                "parent_span_id": span.parent.span_id if span.parent else None,
                "links": [
                    {"trace_id": link.context.trace_id, "span_id": link.context.span_id}
                    for link in span.links
                ],
                "attributes": dict(span.attributes or {}),
                "status": span.status.status_code.name,
            }
            for span in exporter.get_finished_spans()
        ],
    }


async def absent(dsn: str) -> dict[str, Any]:
    sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # what "not installed" looks like

    from taskqueue.client import TaskQueue
    from tests.helpers import all_in_status, running_worker, wait_until

    async with await TaskQueue.connect(dsn) as tq:
        task = await tq.enqueue("noop")
        async with running_worker(dsn):
            await wait_until(lambda: all_in_status(tq.pool, [task.id], "succeeded"))
        stored = await tq.pool.fetchval(
            "SELECT traceparent FROM taskqueue.tasks WHERE id = $1", task.id
        )
    loaded = sorted(
        name for name, module in sys.modules.items() if "opentelemetry" in name and module
    )
    return {"stored": stored, "loaded": loaded}


def main() -> None:
    dsn, mode = sys.argv[1], sys.argv[2]
    scenario = {"traced": traced, "absent": absent}[mode]
    print(json.dumps(asyncio.run(scenario(dsn))))


if __name__ == "__main__":
    main()
