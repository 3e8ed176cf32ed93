"""Task types for the Makefile test: a module found through HANDLERS=, whose
handler records how many of its tasks ran at once (to see CONCURRENCY=)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from taskqueue.registry import Registry, TaskContext

registry = Registry()

_running = 0
_most = 0


@registry.task("overlap_probe")
async def overlap_probe(payload: Any, ctx: TaskContext) -> int:
    global _running, _most
    _running += 1
    _most = max(_most, _running)
    Path(payload["record"]).write_text(str(_most))
    await asyncio.sleep(float(payload.get("seconds", 0.5)))
    _running -= 1
    return _most
