"""``taskqueue tenants``: every tenant with a quota or a rate limit on
starts, and what it uses; one tenant's (``show``); and setting or removing
its limits (``limit``), made as ``local`` in the operator log like the
other operator commands."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from taskqueue.cli.operate import ACTOR, limit_changes
from taskqueue.cli.output import emit_json, table, with_client
from taskqueue.config import Settings

if TYPE_CHECKING:
    from taskqueue.client import TaskQueue
    from taskqueue.store import TenantUsage

COLUMNS = ("tenant", "unfinished", "max queued", "rate", "recent starts")


def cmd_tenants(args: argparse.Namespace, settings: Settings) -> int:
    """List tenants, show one, or set (none: remove) one's limits."""

    async def act(tq: TaskQueue) -> Sequence[TenantUsage]:
        if args.action == "show":
            return [await tq.tenants.get(args.name)]
        if args.action == "limit":
            return [await tq.tenants.set_limits(args.name, actor=ACTOR, **_limits(args))]
        return await tq.tenants(limit=args.limit)

    tenants = with_client(settings, act)
    if args.json:
        emit_json(tenants if args.action is None else tenants[0])
        return 0
    rows = [
        (
            t.name,
            t.unfinished,
            t.max_queued,
            None
            if t.rate_limit is None
            else f"{t.rate_limit.limit}/{t.rate_limit.period_seconds:g}s",
            t.recent_starts,
        )
        for t in tenants
    ]
    print(table(COLUMNS, rows) if rows else "no tenants with a quota or a rate limit")
    return 0


def _limits(args: argparse.Namespace) -> dict[str, Any]:
    return limit_changes(
        {"max_queued": ("--max-queued", args.max_queued), "rate": ("--rate", args.rate_limit)}
    )
