"""Claim lanes (taskqueue.claim_lanes): raising their floors, catching the
tasks of transactions that committed after a raise passed them, and the two
seldom safety nets under them (a task below its lane's floor, a queued task
with no lane). The claims read the lanes themselves (store.claims)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

import asyncpg

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


class LaneKey(NamedTuple):
    """A lane as the database keys it: a tenant's ('' for tasks of none)."""

    queue: str
    type: str
    priority: int
    tenant: str


async def take_lane_checks(
    conn: Executor, queues: Sequence[str], types: Sequence[str], *, every: float
) -> list[LaneKey]:
    """Take the lanes of ``queues`` and ``types`` not checked within ``every``
    seconds (marked checked, so no other worker reads them too); a lane
    locked elsewhere is skipped."""
    records = await conn.fetch(query("take_lane_checks"), list(queues), list(types), every)
    return [LaneKey(r["queue"], r["type"], r["priority"], r["tenant"]) for r in records]


async def find_oldest_queued_tasks(
    conn: Executor, lanes: Sequence[LaneKey]
) -> dict[LaneKey, datetime | None]:
    """The run_at of each lane's oldest queued task, read from the lane's
    start whatever its floor (None: none queued). Locks nothing."""
    records = await conn.fetch(query("find_oldest_queued_tasks"), *_columns(lanes))
    return {
        LaneKey(r["queue"], r["type"], r["priority"], r["tenant"]): r["run_at"] for r in records
    }


async def lower_lanes(conn: Executor, lowest: dict[LaneKey, datetime]) -> list[Lane]:
    """Lower each lane's floor to the run_at given for it where the floor
    lies above; returns the lanes lowered. A lane locked elsewhere is
    skipped (left to its next check)."""
    lanes = list(lowest)
    records = await conn.fetch(
        query("lower_lanes"), *_columns(lanes), [lowest[lane] for lane in lanes]
    )
    return [Lane(r["queue"], r["type"], r["priority"]) for r in records]


async def check_lanes(
    pool: asyncpg.Pool, queues: Sequence[str], types: Sequence[str], *, every: float
) -> list[Lane]:
    """Read the lanes not checked within ``every`` seconds from their start;
    returns the ones whose floor had passed a queued task (now lowered).
    Three statements, each its own transaction (hence a pool, never a
    connection that may be inside one), so that no lane is held while the
    read walks it."""
    lanes = await take_lane_checks(pool, queues, types, every=every)
    if not lanes:
        return []
    oldest = await find_oldest_queued_tasks(pool, lanes)
    found = {lane: run_at for lane, run_at in oldest.items() if run_at is not None}
    return await lower_lanes(pool, found) if found else []


def _columns(lanes: Sequence[LaneKey]) -> tuple[list[str], list[str], list[int], list[str]]:
    return (
        [lane.queue for lane in lanes],
        [lane.type for lane in lanes],
        [lane.priority for lane in lanes],
        [lane.tenant for lane in lanes],
    )


async def open_missing_lanes(conn: Executor, queues: Sequence[str]) -> list[Lane]:
    """Open a lane for queued tasks of ``queues`` that have none; returns them."""
    records = await conn.fetch(query("open_missing_lanes"), list(queues))
    return [Lane(r["queue"], r["type"], r["priority"]) for r in records]
