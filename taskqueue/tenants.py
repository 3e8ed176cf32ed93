"""``tq.tenants``: a tenant's quota (``max_queued``: at most that many
unfinished tasks; None, no limit), its rate limit on starts (``rate``: at
most ``limit`` of its tasks start per rolling ``period_seconds``; None, no
limit) and what it uses now. What enforces them is the enqueue statements
(taskqueue.admit_tasks, migration 0013_tenants) and the governed claim
(claim_governed_tasks.sql, migration 0017_tenant_rates), not this module:
these are the operator's reads and changes."""

from __future__ import annotations

from typing import Any

import msgspec

from taskqueue import limits, store
from taskqueue.db import Runner
from taskqueue.errors import InvalidArgument
from taskqueue.models import RateLimit

_UNCHANGED: Any = msgspec.UNSET


class Tenants:
    def __init__(self, runner: Runner) -> None:
        self._db = runner

    async def get(self, name: str) -> store.TenantUsage:
        """``name``'s quota and unfinished tasks (any name: a tenant that never
        had a quota is not counted, and shows None for both), its rate limit
        and its starts within the last period of it (None for both without one)."""
        limits.check_tenant(name, "name")
        return await self._db.run(store.tenant_usage, name)

    async def __call__(
        self, *, offset: int = 0, limit: int | None = None
    ) -> list[store.TenantUsage]:
        """Every tenant that is counted (it has, or had, a quota) or has a
        rate limit, by name, with its use; ``offset`` and ``limit`` (1 to
        MAX_PAGE_SIZE) page them."""
        limits.check_window(offset, limit)
        return await self._db.run(store.tenants_usage, offset=offset, limit=limit)

    async def set_limits(
        self,
        name: str,
        *,
        max_queued: int | None = _UNCHANGED,
        rate: tuple[int, float] | RateLimit | None = _UNCHANGED,
        actor: str = "local",
    ) -> store.TenantUsage:
        """Set (or with None remove) ``name``'s limits: at most ``max_queued``
        unfinished tasks, at most ``rate = (n, seconds)`` starts per rolling
        period, across every queue, worker and host. Leaving one out keeps
        it. Returns them with its use."""
        limits.check_tenant(name, "name")
        if (
            max_queued is not _UNCHANGED
            and max_queued is not None
            and (type(max_queued) is not int or not 0 <= max_queued <= limits.MAX_LIMIT)
        ):
            raise InvalidArgument("max_queued", f"an integer from 0 to {limits.MAX_LIMIT}, or null")
        limit: RateLimit | None = _UNCHANGED
        if rate is not _UNCHANGED:
            limit = None
            if rate is not None:
                if isinstance(rate, RateLimit):
                    limit = rate
                elif isinstance(rate, tuple) and len(rate) == 2:
                    limit = RateLimit(limit=rate[0], period_seconds=rate[1])
                else:
                    raise InvalidArgument("rate_limit", "(limit, period_seconds), or null")
                limits.check_rate(limit)
        if max_queued is _UNCHANGED and rate is _UNCHANGED:
            raise InvalidArgument("body", "give max_queued, rate_limit or both")
        await self._db.run_connected(
            store.change_tenant_limits, name, max_queued=max_queued, rate=limit, actor=actor
        )
        return await self.get(name)
