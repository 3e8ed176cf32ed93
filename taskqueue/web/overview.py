"""What the Overview page shows, read as one snapshot that every open
dashboard of this API process shares.

At a million tasks and ten million events the whole tasks table or event
history is never read per page view:

- queued, due, running and failed counts, per queue, come from the partial
  indexes that hold just those rows (dashboard_queues.sql), cancelled ones
  from tasks_cancelled_idx: their cost follows the backlog, not the history;
- succeeded is what remains of the total, an index-only count of the
  primary key (~90 ms at a million rows): it is recounted at most every
  ``TOTAL_COST_FACTOR`` times what it took (at least every half second), and
  between recounts the total moves with the live counts;
- throughput is kept per minute for 24 hours in memory: read once, then
  only the last few minutes are read again (a BRIN range scan);
- the whole snapshot is reused for ``FRESH_SECONDS``, so any number of
  dashboards reloading on live events cost two refreshes a second at most.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import msgspec

from taskqueue import store
from taskqueue.models import WorkerInfo
from taskqueue.store import DashboardQueue, Executor, FailureGlance, MinuteCounts

FRESH_SECONDS = 0.5
TOTAL_COST_FACTOR = 50.0  # the total's recount may take 2 % of the time, at most
RECENT_MINUTES = 3  # minutes of throughput read again on every refresh
DAY = timedelta(hours=24)
FAILURE_GROUPS = 5


class Totals(msgspec.Struct, kw_only=True):
    total: int
    queued: int
    due: int
    running: int
    succeeded: int
    failed: int
    cancelled: int


class Bucket(msgspec.Struct, kw_only=True, frozen=True):
    start: datetime
    succeeded: int
    failed: int
    retried: int

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.retried


class Overview(msgspec.Struct, kw_only=True):
    at: datetime  # the database's clock when it was read
    totals: Totals
    queues: list[DashboardQueue]
    workers: list[WorkerInfo]  # live ones: running or stopping
    failures: list[FailureGlance]
    last_hour: list[Bucket]  # 60 minutes, oldest first
    last_day: list[Bucket]  # 48 half hours, oldest first


class Throughput:
    """Finished tasks per minute over the last 24 hours, from task_events."""

    def __init__(self) -> None:
        self._minutes: dict[datetime, MinuteCounts] = {}
        self._loaded = False

    async def refresh(self, conn: Executor, now: datetime) -> None:
        minute = now.replace(second=0, microsecond=0)
        since = None if not self._loaded else minute - timedelta(minutes=RECENT_MINUTES)
        rows = await store.dashboard_throughput(conn, since)
        if since is not None:
            for start in [m for m in self._minutes if m >= since]:
                del self._minutes[start]
        for row in rows:
            self._minutes[row.minute] = row
        oldest = minute - DAY
        for start in [m for m in self._minutes if m < oldest]:
            del self._minutes[start]
        self._loaded = True

    def buckets(self, now: datetime, *, width_minutes: int, count: int) -> list[Bucket]:
        """``count`` buckets of ``width_minutes`` ending with the current one."""
        minute = now.replace(second=0, microsecond=0)
        epoch_minutes = int(minute.timestamp() // 60)
        last_start = minute - timedelta(minutes=epoch_minutes % width_minutes)
        starts = [last_start - timedelta(minutes=width_minutes * i) for i in range(count)][::-1]
        sums = {start: [0, 0, 0] for start in starts}
        first = starts[0]
        for at, row in self._minutes.items():
            if at < first:
                continue
            offset = int((at - first).total_seconds() // 60) // width_minutes
            if 0 <= offset < count:
                sums[starts[offset]][0] += row.succeeded
                sums[starts[offset]][1] += row.failed
                sums[starts[offset]][2] += row.retried
        return [
            Bucket(start=start, succeeded=s, failed=f, retried=r)
            for start, (s, f, r) in sums.items()
        ]


class OverviewSnapshot:
    """The Overview's data, refreshed on demand and shared (see the module
    docstring for what each part costs)."""

    def __init__(self, pool: Executor, *, fresh_seconds: float = FRESH_SECONDS) -> None:
        self._pool = pool
        self._fresh_seconds = fresh_seconds
        self._lock = asyncio.Lock()
        self._value: Overview | None = None
        self._read_at = 0.0
        self._throughput = Throughput()
        # The last recount of every task, and what it found succeeded.
        self._succeeded = 0
        self._total_due_at = 0.0
        self.total_recounts = 0

    async def get(self) -> Overview:
        async with self._lock:
            if self._value is None or time.monotonic() - self._read_at >= self._fresh_seconds:
                self._value = await self._read()
                self._read_at = time.monotonic()
            return self._value

    async def _read(self) -> Overview:
        now = await store.database_now(self._pool)
        queues = await store.dashboard_queues(self._pool)
        cancelled = await store.dashboard_cancelled(self._pool)
        queued = sum(q.queued for q in queues)
        running = sum(q.running for q in queues)
        failed = sum(q.failed for q in queues)
        if time.monotonic() >= self._total_due_at:
            started = time.monotonic()
            total = await store.dashboard_total(self._pool)
            took = time.monotonic() - started
            self._total_due_at = time.monotonic() + max(
                self._fresh_seconds, took * TOTAL_COST_FACTOR
            )
            self._succeeded = max(total - queued - running - failed - cancelled, 0)
            self.total_recounts += 1
        totals = Totals(
            total=self._succeeded + queued + running + failed + cancelled,
            queued=queued,
            due=sum(q.due for q in queues),
            running=running,
            succeeded=self._succeeded,
            failed=failed,
            cancelled=cancelled,
        )
        workers = [
            w for w in await store.list_workers(self._pool) if w.state in ("running", "stopping")
        ]
        failures = await store.dashboard_failures(self._pool, FAILURE_GROUPS)
        await self._throughput.refresh(self._pool, now)
        return Overview(
            at=now,
            totals=totals,
            queues=queues,
            workers=workers,
            failures=failures,
            last_hour=self._throughput.buckets(now, width_minutes=1, count=60),
            last_day=self._throughput.buckets(now, width_minutes=30, count=48),
        )
