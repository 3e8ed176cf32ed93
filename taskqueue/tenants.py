"""``tq.tenants``: a tenant's quota (``max_queued``: at most that many
unfinished tasks; None, no limit) and what it uses now. What enforces it
is the enqueue statements themselves (taskqueue.admit_tasks, migration
0013_tenants), not this module: these are the operator's reads and changes."""

from __future__ import annotations

from typing import Any

import msgspec

from taskqueue import limits, store
from taskqueue.db import Runner
from taskqueue.errors import InvalidArgument

_UNCHANGED: Any = msgspec.UNSET


class Tenants:
    def __init__(self, runner: Runner) -> None:
        self._db = runner

    async def get(self, name: str) -> store.TenantUsage:
        """``name``'s quota and unfinished tasks (any name: a tenant that never
        had a quota is not counted, and shows None for both)."""
        limits.check_tenant(name, "name")
        return await self._db.run(store.tenant_usage, name)

    async def set_limits(
        self, name: str, *, max_queued: int | None = _UNCHANGED, actor: str = "local"
    ) -> store.TenantUsage:
        """Set (or with None remove) ``name``'s limits; returns them with its use."""
        limits.check_tenant(name, "name")
        if max_queued is not _UNCHANGED:
            if max_queued is not None and (
                type(max_queued) is not int or not 0 <= max_queued <= limits.MAX_LIMIT
            ):
                raise InvalidArgument(
                    "max_queued", f"an integer from 0 to {limits.MAX_LIMIT}, or null"
                )
            current = max_queued
        else:
            current = (await self.get(name)).max_queued
        await self._db.run(
            store.set_tenant_limits,
            name,
            max_queued=current,
            actor=actor,
            asked={"max_queued": current},
        )
        return await self.get(name)
