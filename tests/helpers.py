"""Shared test helpers: run a worker in-process or as a real process, poll
with a deadline, read events, cut a process off from PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec

from taskqueue import store
from taskqueue.config import Settings
from taskqueue.models import ClaimedTask
from taskqueue.registry import Registry, load_registry
from taskqueue.worker import Worker

# Quick loops so that tests finish fast; the logic is the same as in production.
FAST = {
    "poll_interval": 0.05,
    "complete_interval": 0.001,
    "backoff_base": 0.01,
    "backoff_cap": 0.05,
}


@asynccontextmanager
async def running_worker(
    database_url: str, registry: Registry | None = None, **overrides: Any
) -> AsyncIterator[Worker]:
    settings = Settings(database_url=database_url, **{**FAST, **overrides})
    worker = Worker(settings, registry or load_registry([]))
    task = asyncio.create_task(worker.run())
    started = asyncio.ensure_future(worker.started.wait())
    done, _ = await asyncio.wait([task, started], timeout=15, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        started.cancel()
        task.result()  # re-raise why it died
    assert worker.started.is_set(), "worker did not start within 15s"
    try:
        yield worker
    finally:
        worker.request_stop()
        await asyncio.wait_for(task, 60)


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], *, timeout: float = 15.0, interval: float = 0.02
) -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def event_types(pool: asyncpg.Pool, task_id: uuid.UUID) -> list[str]:
    rows = await pool.fetch(
        "SELECT event_type FROM taskqueue.task_events WHERE task_id = $1 ORDER BY id", task_id
    )
    return [r["event_type"] for r in rows]


async def status_of(pool: asyncpg.Pool, task_id: uuid.UUID) -> str:
    return str(await pool.fetchval("SELECT status FROM taskqueue.tasks WHERE id = $1", task_id))


async def all_in_status(pool: asyncpg.Pool, ids: list[uuid.UUID], status: str) -> bool:
    count = await pool.fetchval(
        "SELECT count(*) FROM taskqueue.tasks WHERE id = ANY($1) AND status = $2", ids, status
    )
    return bool(count == len(ids))


async def seed_production_shape(pool: asyncpg.Pool, *, backlog: int, claimed: int) -> None:
    """A tasks table the way production sees it: 20,000 finished tasks, a
    queued backlog, ``claimed`` of it running; analysed, so plans are real."""
    await pool.execute(
        "INSERT INTO taskqueue.tasks (id, type, status, completed_at)"
        " SELECT gen_random_uuid(), 'noop', 'succeeded', now() FROM generate_series(1, 20000)"
    )
    await pool.execute(
        "INSERT INTO taskqueue.tasks (id, type) SELECT gen_random_uuid(), 'noop'"
        " FROM generate_series(1, $1)",
        backlog,
    )
    await store.open_missing_lanes(pool, ["default"])  # written by hand: no lane yet
    await store.claim_tasks(pool, ["default"], claimed, "worker-1", 30, types=["noop"])
    await pool.execute("ANALYZE taskqueue.tasks")


@asynccontextmanager
async def worker_process(
    database_url: str, log: Path, *args: str, **env: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A real `taskqueue worker` process (``args`` after the subcommand,
    ``env`` as TASKQUEUE_* variables), its stderr in ``log``; killed on the
    way out if a test left it running."""
    variables = {**os.environ, "DATABASE_URL": database_url, "TASKQUEUE_POLL_INTERVAL": "0.1"}
    variables.pop("TASKQUEUE_DATABASE_URL", None)
    variables.update({f"TASKQUEUE_{k.upper()}": v for k, v in env.items()})
    with log.open("ab") as stderr:  # the child keeps its own copy of the descriptor
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "taskqueue.cli",
            "worker",
            *args,
            env=variables,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
            cwd=Path(__file__).resolve().parent.parent,  # so that tests.* modules import
        )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


class HoldingProxy:
    """A TCP proxy in front of PostgreSQL that can stop forwarding (both ways)
    and later resume, delivering what it held: a network partition that
    heals, as TCP retransmission would see it. Connections are accepted
    during a hold, but nothing reaches the other side until it ends."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()
        self.port = 0

    @classmethod
    async def in_front_of(cls, dsn: str) -> HoldingProxy:
        parts = urlsplit(dsn)
        proxy = cls(parts.hostname or "127.0.0.1", parts.port or 5432)
        proxy._server = await asyncio.start_server(proxy._connected, "127.0.0.1", 0)
        proxy.port = proxy._server.sockets[0].getsockname()[1]
        return proxy

    def dsn(self, dsn: str) -> str:
        parts = urlsplit(dsn)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        return urlunsplit(
            parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host)
        )

    def hold(self) -> None:
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._open.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            pump = asyncio.create_task(self._pump(source, sink))
            self._pumps.add(pump)
            pump.add_done_callback(self._pumps.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                await self._open.wait()
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                sink.close()


async def run_audit(pool: asyncpg.Pool) -> list[str]:
    """Every violation `taskqueue audit` finds, as text (empty: all sound)."""
    from taskqueue.audit import audit

    report = await audit(pool)
    return [f"{v.task_id}: {v.problem}" for v in report.violations]


def claimed_task(**overrides: Any) -> ClaimedTask:
    """A claimed task as a claim returns it, for tests of what handles one."""
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "queue": "default",
        "type": "noop",
        "payload": "{}",
        "priority": 0,
        "attempt": 1,
        "max_retries": 1,
        "timeout_seconds": 30.0,
        "run_at": datetime.now(UTC),
    }
    return ClaimedTask(**{**fields, **overrides})


def explained_plan(explained: object) -> dict[str, object]:
    """The root node of an EXPLAIN (FORMAT JSON) answer, decoded by the
    pool's codec or not."""
    document = explained if isinstance(explained, list) else json.loads(str(explained))
    root: dict[str, object] = document[0]["Plan"]
    return root


def plan_nodes(plan: dict[str, object], index: str) -> list[dict[str, int]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan that reads ``index``."""
    found: list[dict[str, int]] = []
    if plan.get("Index Name") == index:
        found.append(plan)  # type: ignore[arg-type]
    for child in plan.get("Plans", []):  # type: ignore[attr-defined]
        found.extend(plan_nodes(child, index))
    return found


async def bench_report(database_url: str, *args: str, timeout: float) -> dict[str, Any]:
    """``taskqueue bench --json --reps 1 ARGS`` run against ``database_url``:
    its report, each figure by name (the run must succeed)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskqueue.cli",
        "bench",
        "--json",
        "--reps",
        "1",
        *args,
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    report: dict[str, Any] = msgspec.json.decode(stdout)
    return {f["figure"]: f for f in report["figures"]}
