"""The worker's statements on the tasks it runs: claiming (plain or
governed by queue settings), persisting outcomes, extending leases,
rescuing expired ones, and finding queued types no handler takes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from taskqueue.models import (
    ClaimedTask,
    Outcome,
    Status,
)
from taskqueue.store._sql import Executor, query


class Rescue(NamedTuple):
    """What one rescue pass took back, and the time it judged leases by."""

    rescued: list[tuple[uuid.UUID, Status]]
    judged_at: datetime


async def claim_tasks(
    conn: Executor,
    queues: Sequence[str],
    limit: int,
    worker_id: str,
    lease_seconds: float,
    *,
    types: Sequence[str],
    parent_result_types: Sequence[str] = (),
    governed: bool = False,
    statement_timeout: float | None = None,
) -> list[ClaimedTask]:
    """Claim up to ``limit`` due tasks of ``types`` (the ones the worker has
    handlers for) from ``queues``, under a lease of ``lease_seconds``.
    ``parent_result_types``: the types whose handlers read their parents'
    outcomes (``parent_results=True``); only tasks of those carry them.
    ``governed``: some of the queues have settings (pause, limits), which
    only claim_governed_tasks.sql applies; claim_tasks.sql skips them."""
    records = await conn.fetch(
        query("claim_governed_tasks" if governed else "claim_tasks"),
        list(queues),
        limit,
        worker_id,
        lease_seconds,
        list(types),
        list(parent_result_types),
        timeout=statement_timeout,
    )
    return [
        ClaimedTask(
            id=r["id"],
            queue=r["queue"],
            type=r["type"],
            payload=r["payload"],
            priority=r["priority"],
            attempt=r["attempts"],
            max_retries=r["max_retries"],
            timeout_seconds=r["timeout_seconds"],
            run_at=r["run_at"],
            traceparent=r["traceparent"],
            has_callback=r["has_callback"],
            tenant=r["tenant"],
            parent_results=r["parent_results"],
        )
        for r in records
    ]


async def complete_tasks(
    conn: Executor, outcomes: Sequence[Outcome], worker_id: str, *, callbacks: bool = False
) -> set[uuid.UUID]:
    """Persist outcomes in one fenced statement; returns the ids that were
    still this worker's. The others were rescued meanwhile and are untouched.
    ``callbacks``: some task of the batch has a callback (queued with its end)."""
    if not outcomes:
        return set()
    records = await conn.fetch(
        query("complete_tasks_with_callbacks" if callbacks else "complete_tasks"),
        [o.task_id for o in outcomes],
        [o.attempt for o in outcomes],
        [o.kind.value for o in outcomes],
        [o.error for o in outcomes],
        [o.result for o in outcomes],
        [o.retry_delay for o in outcomes],
        [o.reason for o in outcomes],
        worker_id,
        [o.rule for o in outcomes],
        [o.exception for o in outcomes],
        [o.max_elapsed for o in outcomes],
    )
    return {r["id"] for r in records}


async def extend_leases(
    conn: Executor,
    task_ids: Sequence[uuid.UUID],
    worker_id: str,
    lease_seconds: float,
    *,
    statement_timeout: float | None = None,
) -> set[uuid.UUID]:
    if not task_ids:
        return set()
    records = await conn.fetch(
        query("extend_leases"),
        list(task_ids),
        worker_id,
        lease_seconds,
        timeout=statement_timeout,
    )
    return {r["id"] for r in records}


async def find_unhandled_types(
    conn: Executor, queue: str, known_types: Sequence[str], *, limit: int = 50
) -> list[str]:
    """Types of tasks queued in ``queue`` that are not among ``known_types``."""
    records = await conn.fetch(query("find_unhandled_types"), queue, list(known_types), limit)
    return [r["type"] for r in records]


async def expire_tasks(
    conn: Executor, worker_id: str, *, limit: int = 1000, now: datetime | None = None
) -> list[uuid.UUID]:
    """End queued tasks whose expires_at has passed (see expire_tasks.sql);
    returns their ids."""
    records = await conn.fetch(query("expire_tasks"), now, limit, worker_id)
    return [r["id"] for r in records]


async def rescue_expired(
    conn: Executor, rescuer_id: str, *, limit: int = 1000, now: datetime | None = None
) -> list[tuple[uuid.UUID, Status]]:
    """Take back the tasks whose lease ran out before ``now`` (the database's
    clock when None), reading the whole lease index."""
    return (await rescue_expired_since(conn, rescuer_id, None, limit=limit, now=now)).rescued


async def rescue_expired_since(
    conn: Executor,
    rescuer_id: str,
    floor: datetime | None,
    *,
    limit: int = 1000,
    now: datetime | None = None,
) -> Rescue:
    """Take back the tasks whose lease ran out in [``floor``, ``now``);
    ``judged_at`` in the answer is the end of that range."""
    records = await conn.fetch(query("rescue_expired"), now, limit, rescuer_id, floor)
    return Rescue(
        [(r["id"], Status(r["status"])) for r in records if r["id"] is not None],
        records[0]["judged_at"],
    )
