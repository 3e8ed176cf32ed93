"""The task type the pickup-latency phase enqueues: its payload carries the
wall-clock time taken just before the enqueue call, and the handler's first
line measures how long the task took to reach it (same host, same clock)."""

from __future__ import annotations

import asyncio
import time

import msgspec

from taskqueue.backoff import Backoff
from taskqueue.registry import Registry, TaskContext

registry = Registry()


class Probe(msgspec.Struct):
    sent_ns: int


@registry.task("bench_probe", payload=Probe)
async def bench_probe(payload: Probe, ctx: TaskContext) -> dict[str, int]:
    arrived = time.time_ns()
    return {"latency_ns": arrived - payload.sent_ns}


@registry.task("bench_keyed", backoff=Backoff(base=0.05, cap=0.2))
async def bench_keyed(payload: dict[str, int], ctx: TaskContext) -> None:
    """The sequences and keys phases' task: runs ``ms`` milliseconds, and
    fails its first attempt when ``fail`` is set (the retry must hold its
    sequence)."""
    await asyncio.sleep(payload.get("ms", 0) / 1000)
    if payload.get("fail") and ctx.attempt == 1:
        raise RuntimeError("bench: first attempt fails")
