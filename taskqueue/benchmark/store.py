"""The benchmark's own statements (queries/*.sql next to this module), kept
out of the runtime's store. Only ever run on a database the benchmark made."""

from __future__ import annotations

import re
import uuid
from functools import cache
from importlib import resources
from typing import Any

from taskqueue.store import Executor


@cache
def query(name: str) -> str:
    return resources.files("taskqueue.benchmark.queries").joinpath(f"{name}.sql").read_text()


async def reset(conn: Executor) -> None:
    await conn.execute(query("reset"))


async def vacuum_tasks(conn: Executor) -> None:
    await conn.execute(query("vacuum_tasks"))


async def create_reference_table(conn: Executor) -> None:
    await conn.execute(query("reference_table"))


async def reference_insert(conn: Executor, row_id: uuid.UUID, payload: Any) -> None:
    await conn.execute(query("reference_insert"), row_id, payload)


async def last_event_id(conn: Executor) -> int:
    return int(await conn.fetchval(query("last_event_id")))


async def drain_progress(conn: Executor, after_event_id: int) -> tuple[int, float]:
    """(tasks succeeded, seconds from first start to last success) since an event id."""
    row = await conn.fetchrow(query("drain_progress"), after_event_id)
    assert row is not None
    return int(row["succeeded"]), float(row["seconds"] or 0.0)


async def probe_latencies(conn: Executor) -> list[int]:
    return [int(r["latency_ns"]) for r in await conn.fetch(query("probe_latencies"))]


async def count_tasks(conn: Executor) -> int:
    return int(await conn.fetchval(query("count_tasks")))


_BENCH_DATABASE = re.compile(r"^taskqueue_bench_[0-9a-f]{8}$")


async def create_database(conn: Executor, name: str) -> None:
    # Identifiers cannot be parameters; the name is ours, made and checked here.
    if not _BENCH_DATABASE.match(name):
        raise ValueError(f"not a bench database name: {name!r}")
    await conn.execute(f'CREATE DATABASE "{name}"')


async def drop_database(conn: Executor, name: str) -> None:
    if not _BENCH_DATABASE.match(name):
        raise ValueError(f"not a bench database name: {name!r}")
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
