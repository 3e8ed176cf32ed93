"""Operating queues (``tq.queues``): read their state, pause and resume
them, set their concurrency and rate limits and how long their finished
tasks are kept. Calling the object lists every queue, so ``tq.queues()``
reads as it always did."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec

from taskqueue import db, store
from taskqueue.config import Retention, Settings
from taskqueue.durations import format_duration
from taskqueue.errors import InvalidArgument, QueueNotFound
from taskqueue.limits import (
    MAX_QUEUE_LENGTH,
    check_concurrency,
    check_rate,
    check_retention,
    check_window,
    queue_name,
)
from taskqueue.models import QueueInfo, RateLimit
from taskqueue.validation import queue_problem

_NOT_SET: Any = msgspec.UNSET
DEFAULT_RETENTION = Settings().retention


class Queues:
    """The queues of one database, through ``runner``. ``retention``: the
    defaults a queue without its own retention shows (the workers' prune by
    theirs: set TASKQUEUE_RETAIN_* alike everywhere)."""

    def __init__(self, runner: db.Runner, retention: Retention = DEFAULT_RETENTION) -> None:
        self._db = runner
        self._retention = retention

    async def __call__(self, *, offset: int = 0, limit: int | None = None) -> list[QueueInfo]:
        """Every queue that has tasks, settings or live workers, by name;
        ``offset`` and ``limit`` (1 to MAX_PAGE_SIZE) page them."""
        check_window(offset, limit)
        return await self._read(None, offset=offset, limit=limit)

    async def get(self, name: str) -> QueueInfo:
        if queue_problem(name, max_length=MAX_QUEUE_LENGTH) is not None:
            raise QueueNotFound(name)  # no queue can have that name
        found = await self._read(name)
        if not found:
            raise QueueNotFound(name)
        return found[0]

    async def _read(
        self, name: str | None, *, offset: int = 0, limit: int | None = None
    ) -> list[QueueInfo]:
        states = await self._db.run(
            store.queue_states, name, totals=True, offset=offset, limit=limit
        )
        return [q.info(self._retention) for q in states.queues]

    async def pause(self, queue: str, *, actor: str = "local") -> QueueInfo:
        """No worker claims the queue's tasks from its next claim on (running
        ones finish). Takes effect for every worker within a poll interval."""
        await self._db.run_connected(store.set_queue_paused, queue_name(queue), True, actor)
        return await self._settled(queue)

    async def resume(self, queue: str, *, actor: str = "local") -> QueueInfo:
        await self._db.run_connected(store.set_queue_paused, queue_name(queue), False, actor)
        return await self._settled(queue)

    async def set_limits(
        self,
        queue: str,
        *,
        concurrency: int | None = _NOT_SET,
        rate: tuple[int, float] | RateLimit | None = _NOT_SET,
        per_key: int | None = _NOT_SET,
        actor: str = "local",
    ) -> QueueInfo:
        """At most ``concurrency`` of the queue's tasks running at once, at
        most ``rate = (n, seconds)`` task starts per rolling period, and at
        most ``per_key`` running tasks per concurrency_key and tenant, across every
        worker and host. None removes a limit; leaving one out keeps it."""
        asked: dict[str, Any] = {}
        if concurrency is not _NOT_SET:
            check_concurrency(concurrency)
            asked["concurrency_limit"] = concurrency
        if per_key is not _NOT_SET:
            check_concurrency(per_key, "per_key_concurrency")
            asked["per_key_concurrency"] = per_key
        limit: RateLimit | None = None
        if rate is not _NOT_SET:
            if rate is not None:
                limit = (
                    rate
                    if isinstance(rate, RateLimit)
                    else RateLimit(limit=rate[0], period_seconds=rate[1])
                )
                check_rate(limit)
            asked["rate_limit"] = None if limit is None else msgspec.to_builtins(limit)
        if not asked:
            raise InvalidArgument(
                "body", "give concurrency_limit, rate_limit, per_key_concurrency or some of them"
            )
        await self._db.run_connected(
            store.set_queue_limits,
            queue_name(queue),
            concurrency=None if concurrency is _NOT_SET else concurrency,
            change_concurrency=concurrency is not _NOT_SET,
            rate=limit,
            change_rate=rate is not _NOT_SET,
            actor=actor,
            asked=asked,
            per_key=None if per_key is _NOT_SET else per_key,
            change_per_key=per_key is not _NOT_SET,
        )
        return await self._settled(queue)

    async def set_retention(
        self,
        queue: str,
        *,
        succeeded: timedelta | str | None = _NOT_SET,
        failed: timedelta | str | None = _NOT_SET,
        cancelled: timedelta | str | None = _NOT_SET,
        actor: str = "local",
    ) -> QueueInfo:
        """Keep the queue's finished tasks this long, by how they finished
        (durations such as ``"12h"``, ``"7d"``, or timedeltas), instead of
        the defaults; None goes back to the default, leaving one out keeps
        it. Workers prune by it from their next pass."""
        changes: dict[str, timedelta | None] = {}
        for state, value in (
            ("succeeded", succeeded),
            ("failed", failed),
            ("cancelled", cancelled),
        ):
            if value is not _NOT_SET:
                changes[state] = check_retention(f"retain_{state}", value)
        if not changes:
            raise InvalidArgument(
                "body", "give retain_succeeded, retain_failed, retain_cancelled or some of them"
            )
        asked = {
            f"retain_{state}": None if value is None else format_duration(value)
            for state, value in changes.items()
        }
        await self._db.run_connected(
            store.set_queue_retention, queue_name(queue), changes, actor=actor, asked=asked
        )
        return await self._settled(queue)

    async def _settled(self, name: str) -> QueueInfo:
        """The queue after a change of its settings; one that neither has
        tasks nor keeps settings reads as unpaused, unlimited and empty."""
        found = await self._read(name)
        if found:
            return found[0]
        return QueueInfo(
            name=name,
            paused=False,
            concurrency_limit=None,
            rate_limit=None,
            per_key_concurrency=None,
            retain_succeeded=format_duration(self._retention.succeeded),
            retain_failed=format_duration(self._retention.failed),
            retain_cancelled=format_duration(self._retention.cancelled),
            queued=0,
            due=0,
            scheduled=0,
            running=0,
            waiting=0,
            succeeded=0,
            failed=0,
            cancelled=0,
            oldest_due_age_seconds=0.0,
            finished_last_minute=0,
            failed_last_minute=0,
            workers=0,
        )
