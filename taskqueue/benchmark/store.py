"""The benchmark's own statements (queries/*.sql next to this module), kept
out of the runtime's store. Only ever run on a database the benchmark made."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from taskqueue.store import Executor

RESET_SECONDS = 60.0  # how long reset() keeps trying


@cache
def query(name: str) -> str:
    return resources.files("taskqueue.benchmark.queries").joinpath(f"{name}.sql").read_text()


def query_path(name: str) -> Path:
    """The file itself, for a tool that reads it (pgbench -f)."""
    return Path(str(resources.files("taskqueue.benchmark.queries").joinpath(f"{name}.sql")))


async def reset(pool: asyncpg.Pool) -> None:
    """Empty the queue's tables, trying again while running workers hold a
    lock it needs (reset.sql waits at most 200 ms for one). A pool: each try
    is a transaction of its own, which a timeout ends and nothing else."""
    deadline = time.monotonic() + RESET_SECONDS
    while True:
        try:
            await pool.execute(query("reset"))
            return
        except (asyncpg.LockNotAvailableError, asyncpg.DeadlockDetectedError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def vacuum_tasks(conn: Executor) -> None:
    await conn.execute(query("vacuum_tasks"))


async def create_reference_table(conn: Executor) -> None:
    await conn.execute(query("reference_table"))


async def reference_insert(conn: Executor, row_id: uuid.UUID, payload: Any) -> None:
    await conn.execute(query("reference_insert"), row_id, payload)


async def release_latencies(conn: Executor) -> list[float]:
    """Milliseconds from each dependent's last parent success to its start."""
    return [r["ms"] for r in await conn.fetch(query("release_latencies"))]


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


async def database_now(conn: Executor) -> datetime:
    value: datetime = await conn.fetchval(query("database_now"))
    return value


async def hold_horizon(conn: Executor) -> int:
    """Take an XID in ``conn``'s open transaction (see hold_horizon.sql)."""
    return int(await conn.fetchval(query("hold_horizon")))


async def limit_idle_transaction(conn: Executor, seconds: float) -> None:
    await conn.execute(query("limit_idle_transaction"), f"{max(1, round(seconds))}s")


class SessionState(msgspec.Struct, kw_only=True):
    state: str | None = None  # None: the session has ended
    xid: str | None = None
    xmin: str | None = None


async def session_state(conn: Executor, pid: int) -> SessionState:
    row = await conn.fetchrow(query("session_state"), pid)
    if row is None:
        return SessionState()
    return SessionState(state=row["state"], xid=row["xid"], xmin=row["xmin"])


class TableHealth(msgspec.Struct, kw_only=True):
    tasks_dead: int
    schema_dead: int
    tasks_index_bytes: int


async def table_health(conn: Executor) -> TableHealth:
    row = await conn.fetchrow(query("table_health"))
    assert row is not None
    return TableHealth(
        tasks_dead=int(row["tasks_dead"]),
        schema_dead=int(row["schema_dead"]),
        tasks_index_bytes=int(row["tasks_index_bytes"]),
    )


class Span(msgspec.Struct, kw_only=True):
    queued: int
    started: int
    succeeded: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None


async def pressure_spans(conn: Executor, after_event_id: int, bounds: list[datetime]) -> list[Span]:
    """One Span per [bounds[k], bounds[k + 1]) (see pressure_spans.sql)."""
    rows = await conn.fetch(query("pressure_spans"), after_event_id, bounds)
    return [
        Span(
            queued=int(r["queued"]),
            started=int(r["started"]),
            succeeded=int(r["succeeded"]),
            p50_ms=r["p50"],
            p99_ms=r["p99"],
            max_ms=r["max"],
        )
        for r in rows
    ]


async def load_history(conn: Executor, first: int, last: int, total: int) -> None:
    await conn.execute(query("load_history"), first, last, total)


async def vacuum_history(conn: Executor) -> None:
    await conn.execute(query("vacuum_history"))


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


async def backends_by_name(conn: Executor) -> dict[str, int]:
    return {r["application_name"]: r["n"] for r in await conn.fetch(query("backends_by_name"))}


async def pickup_seconds(conn: Executor, ids: list[uuid.UUID]) -> list[float]:
    return [float(r["seconds"]) for r in await conn.fetch(query("pickup_seconds"), ids)]


async def unfinished_tasks(conn: Executor) -> int:
    return int(await conn.fetchval(query("unfinished_tasks")))


async def succeeded_tasks(conn: Executor) -> int:
    return int(await conn.fetchval(query("succeeded_tasks")))


async def stranded_waiting(conn: Executor) -> int:
    return int(await conn.fetchval(query("stranded_waiting")))


async def started_before_parent(conn: Executor) -> int:
    return int(await conn.fetchval(query("started_before_parent")))


async def held_by_process(conn: Executor, pid: int) -> int:
    return int(await conn.fetchval(query("held_by_process"), f":{pid}:"))


async def fair_pickups(conn: Executor, flooding: str) -> list[float]:
    return [r["ms"] for r in await conn.fetch(query("fair_pickups"), flooding)]


async def tenant_queued(conn: Executor, tenant: str) -> int:
    return int(await conn.fetchval(query("tenant_queued"), tenant))


async def key_peak(conn: Executor, queue: str) -> int:
    return int(await conn.fetchval(query("key_peak"), queue))


async def sequence_check(conn: Executor, queue: str) -> tuple[int, int, int]:
    """(overlaps, order violations, unfinished tasks) of the sequences of ``queue``."""
    row = await conn.fetchrow(query("sequence_check"), queue)
    assert row is not None
    return int(row["overlaps"]), int(row["violations"]), int(row["unfinished"])
