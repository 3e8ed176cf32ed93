"""The history's hash chain (migrations 0016_history_chain and
0021_sealed_by_workers): sealing what was written since the last tick
(workers' HistorySealer, and verify-history first), turning it on and off
(the schema owner), walking it (verify_history.sql) and reading the lanes'
heads, the values to keep outside the database as an anchor."""

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


class ChainState(msgspec.Struct, frozen=True):
    sealing: bool  # workers seal new events
    links: int
    sealed_at: datetime  # when a tick last sealed something (or sealing began)


async def seal_history(conn: Executor, limit: int) -> int:
    """One tick: seal the events committed since the last one, at most
    about ``limit``; 0 when another session is sealing or the chain is off."""
    sealed: int = await conn.fetchval(query("seal_history"), limit)
    return sealed


async def set_history_chain(conn: Executor, on: bool) -> None:
    """Start or stop sealing new events (the schema's owner only)."""
    await conn.execute(query("history_chain_on" if on else "history_chain_off"))


async def history_chain_state(conn: Executor) -> ChainState:
    row = await conn.fetchrow(query("history_chain_state"))
    assert row is not None  # the sealer's row is made by its migration
    return ChainState(bool(row["sealing"]), int(row["links"]), row["sealed_at"])


async def verify_history(conn: Executor, since: datetime | None = None) -> list[HistoryProblem]:
    rows = await conn.fetch(query("verify_history"), since)
    return [HistoryProblem(r["task_id"], r["lane"], r["seq"], r["problem"]) for r in rows]


async def chain_heads(conn: Executor) -> list[ChainHead]:
    rows = await conn.fetch(query("history_heads"))
    return [ChainHead(r["lane"], r["seq"], r["hash"]) for r in rows]


async def check_anchor(conn: Executor, heads: list[ChainHead]) -> list[HistoryProblem]:
    """Heads kept outside the database, against the chain: each recorded
    link must still hash the same, and no lane may have become shorter. A
    link that retention has deleted since cannot be checked (not a problem)."""
    problems = []
    for head in heads:
        row = await conn.fetchrow(query("history_link"), head.lane, head.seq)
        assert row is not None  # the statement always returns one row
        if row["head_seq"] < head.seq:
            problems.append(
                HistoryProblem(
                    None,
                    head.lane,
                    head.seq,
                    f"lane {head.lane} ends at link {row['head_seq']}, the anchor"
                    f" recorded link {head.seq}: the chain was cut or rewritten",
                )
            )
        elif row["hash"] is not None and row["hash"] != head.hash:
            problems.append(
                HistoryProblem(
                    None,
                    head.lane,
                    head.seq,
                    f"link {head.seq} of lane {head.lane} differs from the anchor:"
                    " the chain was rewritten",
                )
            )
    return problems
