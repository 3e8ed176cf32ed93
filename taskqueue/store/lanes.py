"""Claim lanes (taskqueue.claim_lanes): raising their floors, catching the
tasks of transactions that committed after a raise passed them, and the two
seldom safety nets under them (a task below its lane's floor, a queued task
with no lane). The claims read the lanes themselves (store.claims)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from taskqueue.store._sql import Executor, query


class Lane(NamedTuple):
    queue: str
    type: str
    priority: int


async def advance_lanes(
    conn: Executor,
    queues: Sequence[str],
    types: Sequence[str],
    *,
    grace: float,
    every: float,
    until: datetime | None = None,
) -> dict[Lane, datetime | None]:
    """Raise the floors of the lanes of ``queues`` and ``types`` not raised
    within ``every`` seconds, to no later than ``grace`` seconds before the
    clock and before ``until``; returns each raised lane's new floor."""
    records = await conn.fetch(
        query("advance_lanes"), list(queues), list(types), grace, every, until
    )
    return {Lane(r["queue"], r["type"], r["priority"]): r["floor_at"] for r in records}


class Catch(NamedTuple):
    """What catch_late_tasks found: the transactions in progress at it, the
    time it began (a raise after it passes nothing it could not list) and
    how many lanes it lowered."""

    running: list[int]
    taken_at: datetime
    lowered: int


async def catch_late_tasks(
    conn: Executor, running: Sequence[int], queues: Sequence[str], types: Sequence[str]
) -> Catch:
    """Lower the floors passed by tasks of transactions that were in progress
    (``running``, as the previous catch returned them) and have ended since."""
    record = await conn.fetchrow(
        query("catch_late_tasks"), list(running), list(queues), list(types)
    )
    assert record is not None  # the statement always returns one row
    return Catch(list(record["running"]), record["taken_at"], int(record["lowered"]))


async def check_lanes(
    conn: Executor, queues: Sequence[str], types: Sequence[str], *, every: float
) -> list[Lane]:
    """Read the lanes not checked within ``every`` seconds from their start;
    returns the ones whose floor had passed a queued task (now lowered)."""
    records = await conn.fetch(query("check_lanes"), list(queues), list(types), every)
    return [Lane(r["queue"], r["type"], r["priority"]) for r in records if r["lowered"]]


async def open_missing_lanes(conn: Executor, queues: Sequence[str]) -> list[Lane]:
    """Open a lane for queued tasks of ``queues`` that have none; returns them."""
    records = await conn.fetch(query("open_missing_lanes"), list(queues))
    return [Lane(r["queue"], r["type"], r["priority"]) for r in records]
