"""What the Overview page shows, read as one snapshot that every open
dashboard of this API process shares.

At a million tasks and ten million events the whole tasks table or event
history is never read per page view:

- queued, due and running counts, per queue, come from the partial
  indexes that hold just those rows (queue_states.sql), failed and
  cancelled ones from the finish counters (queue_counts): their cost
  follows the backlog, not the history;
- succeeded is what remains of the total (live rows plus the finish
  counters, dashboard_total.sql). It is read in the background, at most
  every ``TOTAL_COST_FACTOR`` times what it took (at least every half
  second); the first view after a start shows "counting…" for a moment,
  and between counts the total moves with the live counts;
- throughput is kept per minute for 24 hours in memory: the last hour is
  read at once, the rest of the day in the background, then only the last
  few minutes on each refresh (BRIN range scans);
- the whole snapshot is reused for ``FRESH_SECONDS``, so any number of
  dashboards reloading on live events cost two refreshes a second at most.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta

import msgspec

from taskqueue.models import WorkerInfo
from taskqueue.store import FailureGlance, MinuteCounts, QueueState
from taskqueue.views import Views

logger = logging.getLogger("taskqueue.web")

FRESH_SECONDS = 0.5
TOTAL_COST_FACTOR = 50.0  # the total's recount may take 2 % of the time, at most
RECENT_MINUTES = 3  # minutes of throughput read again on every refresh
DAY = timedelta(hours=24)
HOUR = timedelta(hours=1)
FAILURE_GROUPS = 5


class Totals(msgspec.Struct, kw_only=True):
    total: int | None  # None until the first count of every task ends
    queued: int
    due: int
    running: int
    succeeded: int | None
    failed: int
    cancelled: int
    expired: int = 0


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
    queues: list[QueueState]
    workers: list[WorkerInfo]  # live ones: running or stopping
    failures: list[FailureGlance]
    last_hour: list[Bucket]  # 60 minutes, oldest first
    last_day: list[Bucket]  # 48 half hours, oldest first
    day_complete: bool  # False while the 23 hours before the last are being read


class Throughput:
    """Finished tasks per minute over the last 24 hours, from task_events.

    The first refresh reads the last hour and leaves the 23 hours before it
    to a background read (at a million events a day that one takes ~100 ms:
    no page waits for it); every later refresh reads the last few minutes."""

    def __init__(self) -> None:
        self._minutes: dict[datetime, MinuteCounts] = {}
        self._started = False
        self._backfill: asyncio.Task[None] | None = None
        self.day_complete = False

    async def refresh(self, views: Views, now: datetime) -> None:
        minute = now.replace(second=0, microsecond=0)
        first = not self._started
        since = minute - (HOUR if first else timedelta(minutes=RECENT_MINUTES))
        rows = await views.throughput(since)
        for start in [m for m in self._minutes if m >= since]:
            del self._minutes[start]
        for row in rows:
            self._minutes[row.minute] = row
        for start in [m for m in self._minutes if m < minute - DAY]:
            del self._minutes[start]
        if first:
            # Started after this view's own read, so as not to slow it down.
            self._started = True
            self._backfill = asyncio.create_task(
                self._read_day(views, minute - DAY, since), name="dashboard throughput"
            )

    async def _read_day(self, views: Views, since: datetime, until: datetime) -> None:
        try:
            rows = await views.throughput(since, until)
        except Exception as exc:
            logger.warning("reading 24 hours of throughput failed (%s)", type(exc).__name__)
            self._started = False  # the next refresh tries again
            return
        for row in rows:
            self._minutes.setdefault(row.minute, row)
        self.day_complete = True

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

    def __init__(self, views: Views, *, fresh_seconds: float = FRESH_SECONDS) -> None:
        self._views = views
        self._fresh_seconds = fresh_seconds
        self._lock = asyncio.Lock()
        self._value: Overview | None = None
        self._read_at = 0.0
        self._throughput = Throughput()
        # What the last count of every task found succeeded (None before
        # the first count ends), and when the next count may start.
        self._succeeded: int | None = None
        self._counting: asyncio.Task[None] | None = None
        self._count_due_at = 0.0
        self.total_counts = 0

    async def get(self) -> Overview:
        async with self._lock:
            if self._value is None or time.monotonic() - self._read_at >= self._fresh_seconds:
                self._value = await self._read()
                self._read_at = time.monotonic()
            return self._value

    async def _read(self) -> Overview:
        now = await self._views.now()
        await self._throughput.refresh(self._views, now)
        queues, cancelled = await self._counts()
        workers = [w for w in await self._views.workers() if w.state in ("running", "stopping")]
        failures = await self._views.failures(FAILURE_GROUPS)
        queued = sum(q.queued for q in queues)
        running = sum(q.running for q in queues)
        failed = sum(q.failed for q in queues)
        expired = sum(q.expired for q in queues)
        succeeded = self._succeeded
        totals = Totals(
            total=None
            if succeeded is None
            else succeeded + queued + running + failed + cancelled + expired,
            queued=queued,
            due=sum(q.due for q in queues),
            running=running,
            succeeded=succeeded,
            failed=failed,
            cancelled=cancelled,
            expired=expired,
        )
        if time.monotonic() >= self._count_due_at and (
            self._counting is None or self._counting.done()
        ):
            # After this view's own reads, so as not to slow them down.
            self._counting = asyncio.create_task(self._count(), name="dashboard task count")
        return Overview(
            at=now,
            totals=totals,
            queues=queues,
            workers=workers,
            failures=failures,
            last_hour=self._throughput.buckets(now, width_minutes=1, count=60),
            last_day=self._throughput.buckets(now, width_minutes=30, count=48),
            day_complete=self._throughput.day_complete,
        )

    async def _counts(self) -> tuple[list[QueueState], int]:
        states = await self._views.queue_states(failed=True)
        return states.queues, await self._views.cancelled()

    async def _count(self) -> None:
        """Count every task (in the background, though it no longer reads
        the history) and take succeeded as the rest."""
        try:
            started = time.monotonic()
            total = await self._views.total()
            queues, cancelled = await self._counts()
            took = time.monotonic() - started
        except Exception as exc:
            logger.warning("counting every task failed (%s)", type(exc).__name__)
            self._count_due_at = time.monotonic() + self._fresh_seconds
            return
        others = sum(q.queued + q.running + q.failed + q.expired for q in queues) + cancelled
        self._succeeded = max(total - others, 0)
        self._count_due_at = time.monotonic() + max(self._fresh_seconds, took * TOTAL_COST_FACTOR)
        self.total_counts += 1
