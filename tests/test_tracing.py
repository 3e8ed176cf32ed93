"""Tracing with the otel extra: enqueue stores the caller's traceparent and
the worker runs the handler in a span that continues that trace; without a
span nothing is stored, and without OpenTelemetry nothing is imported. Each
scenario runs in a process of its own (a tracer provider is set once per
process)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import asyncpg

from taskqueue.client import TaskQueue
from taskqueue.observability import tracing

REPO = Path(__file__).resolve().parent.parent


async def scenario(database_url: str, mode: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.tracing_scenario",
        database_url,
        mode,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-3000:]
    result: dict[str, Any] = json.loads(out.decode().splitlines()[-1])
    return result


async def test_the_execution_span_continues_the_trace_that_enqueued_the_task(
    database_url: str,
) -> None:
    got = await scenario(database_url, "traced")
    request, tasks = got["request"], got["tasks"]
    traceparent = f"00-{request['trace_id']:032x}-{request['span_id']:016x}-"
    for enqueued in ("inside", "failing"):
        stored = got["stored"][tasks[enqueued]]
        assert stored.startswith(traceparent)
        assert int(stored.rsplit("-", 1)[1], 16) & 1, "sampled"
    assert got["stored"][tasks["outside"]] is None, "no span current: nothing stored"

    executions = {
        span["attributes"]["taskqueue.task_id"]: span
        for span in got["spans"]
        if span["name"] == "taskqueue.execute"
    }
    assert set(executions) == set(tasks.values())
    inside = executions[tasks["inside"]]
    assert inside["kind"] == "CONSUMER"
    assert inside["trace_id"] == request["trace_id"]
    assert inside["parent_span_id"] == request["span_id"]
    assert inside["links"] == [{"trace_id": request["trace_id"], "span_id": request["span_id"]}]
    assert inside["attributes"] == {
        "taskqueue.task_id": tasks["inside"],
        "taskqueue.type": "noop",
        "taskqueue.queue": "default",
        "taskqueue.attempt": 1,
        "taskqueue.worker_id": inside["attributes"]["taskqueue.worker_id"],
        "taskqueue.outcome": "succeeded",
        "messaging.system": "taskqueue",
        "messaging.operation.type": "process",
        "messaging.destination.name": "default",
        "messaging.message.id": tasks["inside"],
    }
    assert inside["status"] == "UNSET"
    failing = executions[tasks["failing"]]
    assert failing["attributes"]["taskqueue.outcome"] == "failed"
    assert failing["status"] == "ERROR"
    outside = executions[tasks["outside"]]
    assert outside["trace_id"] != request["trace_id"]
    assert outside["parent_span_id"] is None
    assert outside["links"] == []


async def test_without_opentelemetry_nothing_is_imported_and_nothing_stored(
    database_url: str,
) -> None:
    got = await scenario(database_url, "absent")
    assert got == {"stored": None, "loaded": []}


async def test_with_the_api_alone_nothing_is_stored_and_no_span_is_made(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    # This process has OpenTelemetry's API but no tracer provider set.
    task = await tq.enqueue("noop")
    stored = await pool.fetchval("SELECT traceparent FROM taskqueue.tasks WHERE id = $1", task.id)
    assert stored is None
    assert tracing.current_traceparent() is None
    assert tracing.execution_tracer("w") is None
