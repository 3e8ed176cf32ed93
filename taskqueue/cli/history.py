"""``taskqueue history-chain on|off|status``: start or stop sealing the
history (the schema owner, on the direct URL as migrate uses), and
``taskqueue verify-history``: seal what the workers have not reached yet,
walk the history's hash chain (migrations 0016_history_chain,
0021_sealed_by_workers) and name every task whose trail, payload or result
was changed, moved or removed; ``--heads`` prints the lanes' heads, the values
to keep outside the database as an anchor, and ``--anchor FILE`` checks the
chain against such a copy (the last line of the file)."""

from __future__ import annotations

import argparse
import asyncio
import json

import asyncpg

from taskqueue import db, store
from taskqueue.cli.output import zoned
from taskqueue.config import Settings
from taskqueue.text import escape_controls
from taskqueue.worker.sealer import BATCH as SEAL_BATCH


def cmd_history_chain(args: argparse.Namespace, settings: Settings) -> int:
    async def main() -> int:
        conn = await db.connect(settings.direct_url or settings.require_database_url())
        try:
            if args.action != "status":
                async with conn.transaction():
                    await store.set_history_chain(conn, args.action == "on")
            state = await store.history_chain_state(conn)
        finally:
            await conn.close()
        said = "on: new events are sealed" if state.sealing else "off: new events are not sealed"
        print(
            f"history chain {said} ({state.links} links written,"
            f" the last tick that sealed something at {state.sealed_at.isoformat()})"
        )
        return 0

    return asyncio.run(main())


def cmd_verify_history(args: argparse.Namespace, settings: Settings) -> int:
    since = zoned(args.since, "--since")
    anchor = _read_anchor(args.anchor) if args.anchor else None

    async def main() -> int:
        conn = await db.connect(settings.require_database_url())
        try:
            await _seal_pending(conn)
            # One snapshot: links and events are read as of the same moment.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                state = await store.history_chain_state(conn)
                if not state.sealing and not state.links:
                    print(
                        "verify-history: the history chain is off and holds nothing"
                        " (`taskqueue history-chain on` starts it)"
                    )
                    return 2
                problems = await store.verify_history(conn, since)
                heads = await store.chain_heads(conn)
                if anchor is not None:
                    problems += await store.check_anchor(conn, anchor)
        finally:
            await conn.close()
        if args.heads:
            print(json.dumps([{"lane": h.lane, "seq": h.seq, "hash": h.hash} for h in heads]))
        tasks = sorted({str(p.task_id) for p in problems if p.task_id is not None})
        for problem in problems[: args.max_shown]:
            where = f"task {problem.task_id}" if problem.task_id else "chain"
            print(f"{where}: {escape_controls(problem.problem)}")
        if len(problems) > args.max_shown:
            print(f"… and {len(problems) - args.max_shown} more")
        links = sum(h.seq for h in heads)
        if problems:
            print(f"verify-history: {len(problems)} problem(s), {len(tasks)} task(s) named")
            return 1
        print(f"verify-history: the chain holds ({links} links written)")
        return 0

    return asyncio.run(main())


async def _seal_pending(conn: asyncpg.Connection) -> None:
    """Seal what was committed since the workers' last tick, so that the
    walk covers all but what commits meanwhile. A role that may not seal
    (the auditor) walks as it is: the rest waits for the workers' tick, and
    the walk does not name it."""
    try:
        while await store.seal_history(conn, SEAL_BATCH) >= SEAL_BATCH:
            pass
    except asyncpg.InsufficientPrivilegeError:
        pass


def _read_anchor(path: str) -> list[store.ChainHead]:
    """The last line of ``path``: the JSON ``--heads`` printed."""
    with open(path, encoding="utf-8") as kept:
        lines = [line for line in kept.read().splitlines() if line.strip()]
    if not lines:
        raise SystemExit(f"verify-history: {path} holds no heads")
    try:
        return [
            store.ChainHead(int(h["lane"]), int(h["seq"]), str(h["hash"]))
            for h in json.loads(lines[-1])
        ]
    except (ValueError, KeyError, TypeError) as bad:
        raise SystemExit(f"verify-history: {path}: not what --heads prints ({bad})") from None
