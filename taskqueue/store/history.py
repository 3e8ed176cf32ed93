"""The history's hash chain (migration 0013_history_chain): walking it
(verify_history.sql) and reading the lanes' heads, the values to keep
outside the database as an anchor."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from taskqueue.store._sql import Executor, query


class HistoryProblem(msgspec.Struct, frozen=True):
    """Something the chain shows was changed, moved or removed; ``task_id``
    None for a break in the chain itself."""

    task_id: uuid.UUID | None
    lane: int | None
    seq: int | None
    problem: str


class ChainHead(msgspec.Struct, frozen=True):
    lane: int
    seq: int
    hash: str  # hex


async def verify_history(conn: Executor, since: datetime | None = None) -> list[HistoryProblem]:
    rows = await conn.fetch(query("verify_history"), since)
    return [HistoryProblem(r["task_id"], r["lane"], r["seq"], r["problem"]) for r in rows]


async def chain_heads(conn: Executor) -> list[ChainHead]:
    rows = await conn.fetch(query("history_heads"))
    return [ChainHead(r["lane"], r["seq"], r["hash"]) for r in rows]
