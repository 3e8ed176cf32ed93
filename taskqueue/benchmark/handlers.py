"""The task type the pickup-latency phase enqueues: its payload carries the
wall-clock time taken just before the enqueue call, and the handler's first
line measures how long the task took to reach it (same host, same clock)."""

from __future__ import annotations

import time

import msgspec

from taskqueue.registry import Registry, TaskContext

registry = Registry()


class Probe(msgspec.Struct):
    sent_ns: int


@registry.task("bench_probe", payload=Probe)
async def bench_probe(payload: Probe, ctx: TaskContext) -> dict[str, int]:
    arrived = time.time_ns()
    return {"latency_ns": arrived - payload.sent_ns}
