"""Phase ``pressure``: a fixed offered rate through three stages, clean, then
pinned (another session idle in a transaction that holds an XID, so vacuum
can remove nothing that dies meanwhile), then recovery (that session rolled
back), with real worker processes draining a no-op type.

The producer paces itself by the clock: the tasks due by any moment are
``rate * elapsed``, sent in small batches every PRESSURE_TICK, never as fast
as it can; when it cannot keep that schedule, its lag is reported per window.
Rates, backlogs and pickup latencies come afterwards from the events the
database wrote (its clock); dead tuples and the pinning session's XID are
read at each window's end (from the statistics views, which cost nothing
that grows)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import asyncpg
import msgspec

from taskqueue import db
from taskqueue.benchmark import store as bench_store
from taskqueue.benchmark.options import (
    BULK_BATCH,
    PRESSURE_BEHIND,
    PRESSURE_TAIL,
    PRESSURE_TICK,
    Options,
)
from taskqueue.benchmark.phase import Run
from taskqueue.benchmark.report import PressureRun, PressureStage, PressureWindow
from taskqueue.benchmark.tools import process, until
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask

CLEAN, PINNED, RECOVERY = "clean", "pinned", "recovery"
WARMUP_TASKS = 200


class Planned(msgspec.Struct, frozen=True):
    stage: str
    start: float  # seconds after the clean stage began
    end: float


def plan(o: Options) -> list[Planned]:
    """The windows, cut per stage so that none spans two (a stage's last
    window is shorter when its length is not a multiple of the window)."""
    windows: list[Planned] = []
    begin = 0.0
    for stage, seconds in (
        (CLEAN, o.pressure_clean),
        (PINNED, o.pressure_pinned),
        (RECOVERY, o.pressure_recovery),
    ):
        end = begin + seconds
        at = begin
        while at < end - 1e-9:
            windows.append(Planned(stage, at, min(end, at + o.pressure_window)))
            at += o.pressure_window
        begin = end
    return windows


class Pin:
    """The session that holds the vacuum horizon. ``release`` is idempotent
    and never leaves the session open: if rolling back fails or is cancelled,
    the socket is dropped and the server rolls back on its own."""

    def __init__(self, dsn: str, seconds: float) -> None:
        self._dsn = dsn
        self._seconds = seconds
        self._conn: asyncpg.Connection | None = None
        self.pid: int | None = None
        self.xid: int | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None

    async def hold(self) -> None:
        conn = await db.connect(self._dsn)
        self._conn = conn
        self.pid = conn.get_server_pid()
        # Even a bench killed with SIGKILL frees the server a minute after
        # the stage would have ended.
        await bench_store.limit_idle_transaction(conn, self._seconds + 60)
        await conn.transaction().start()  # left open on purpose: that is the pin
        self.xid = await bench_store.hold_horizon(conn)

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await asyncio.wait_for(conn.close(), 10)  # ends the transaction: a rollback
        except Exception:
            conn.terminate()
        except BaseException:  # cancelled (Ctrl-C) while closing
            conn.terminate()
            raise


class Producer:
    """Enqueues ``rate`` tasks/s on a schedule computed from ``started``
    (time.monotonic()); it alone keeps its lag figures."""

    def __init__(self, tq: TaskQueue, rate: float, started: float) -> None:
        self._tq = tq
        self._rate = rate
        self._started = started
        self.sent = 0
        self._lag = 0.0

    def take_lag(self) -> float:
        """The largest lag behind schedule since the last call, in seconds."""
        lag, self._lag = self._lag, 0.0
        return lag

    async def run(self) -> None:
        while True:
            now = time.monotonic()
            due = math.floor(self._rate * (now - self._started)) - self.sent
            if due > 0:
                oldest_due_at = self._started + (self.sent + 1) / self._rate
                self._lag = max(self._lag, now - oldest_due_at)
                size = min(due, BULK_BATCH)  # a lag must not turn into one huge batch
                await self._tq.enqueue_many([NewTask(type="noop") for _ in range(size)])
                self.sent += size
            elapsed = time.monotonic() - self._started
            next_tick = self._started + (math.floor(elapsed / PRESSURE_TICK) + 1) * PRESSURE_TICK
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))


class Sample(msgspec.Struct, kw_only=True):
    health: bench_store.TableHealth
    pinned_xid: str | None
    producer_lag_s: float


async def run_pressure(bench: Run) -> PressureRun:
    o = bench.o
    rate, note = o.pressure_rate, f"{o.pressure_rate:,.0f}/s, --pressure-rate"
    if o.pressure_rate_share is not None:
        await bench_store.reset(bench.pool)
        await bench.fill(o.drain_n, "pressure: clean drain, enqueue")
        drained = await bench.drain_with_worker(o.drain_n, "pressure: clean drain")
        rate = drained * o.pressure_rate_share
        note = f"{o.pressure_rate_share:.0%} of a clean drain measured first ({drained:,.0f}/s)"
    windows = plan(o)
    await bench_store.reset(bench.pool)
    await bench_store.vacuum_tasks(bench.pool)
    env = bench.env(TASKQUEUE_CONCURRENCY=str(o.pressure_concurrency))
    pin = Pin(bench.dsn, o.pressure_pinned)
    released = True
    samples: list[Sample] = []
    with contextlib.ExitStack() as workers:
        for _ in range(o.pressure_workers):
            workers.enter_context(process(["worker"], env, bench.log))
        since, t0_db, t0 = await _warm_up(bench)
        producer = Producer(bench.unchecked, rate, t0)
        producing = asyncio.create_task(producer.run())
        try:
            for w in windows:
                if w.stage == PINNED and not pin.held:
                    await pin.hold()
                elif w.stage == RECOVERY and pin.held:
                    released = await _release(bench, pin)
                await _sleep_until(t0 + w.end, bench, w)
                if producing.done():
                    producing.result()  # the producer failed: raise its error
                samples.append(await _sample(bench, pin, producer))
        finally:
            producing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producing
            if pin.held:
                released = await _release(bench, pin) and released
    return await _report(bench, o, rate, note, pin, released, windows, samples, since, t0_db)


async def _warm_up(bench: Run) -> tuple[int, datetime, float]:
    """Wait until every worker is live and a first batch went through; then
    (the last event id, the database clock, the monotonic clock) mark t0."""

    async def all_live() -> bool:
        return (await bench.tq.views.queue_states()).live_workers >= bench.o.pressure_workers

    await until(all_live, 60, "the pressure workers' start")
    since = await bench_store.last_event_id(bench.pool)
    await bench.unchecked.enqueue_many([NewTask(type="noop") for _ in range(WARMUP_TASKS)])

    async def warm() -> bool:
        succeeded, _ = await bench_store.drain_progress(bench.pool, since)
        return succeeded >= WARMUP_TASKS

    await until(warm, 60, "the pressure warm-up")
    since = await bench_store.last_event_id(bench.pool)
    return since, await bench_store.database_now(bench.pool), time.monotonic()


async def _sleep_until(at: float, bench: Run, w: Planned) -> None:
    total = w.end - w.start
    while (left := at - time.monotonic()) > 0:
        bench.progress.show(f"pressure: {w.stage} {w.end:.0f}s", total - left, total)
        await asyncio.sleep(min(left, 0.5))
    bench.progress.show(f"pressure: {w.stage} {w.end:.0f}s", total, total)


async def _release(bench: Run, pin: Pin) -> bool:
    """Roll the pin back; True once the server shows its session gone."""
    pid = pin.pid
    await pin.release()
    if pid is None:
        return True

    async def gone() -> bool:
        return (await bench_store.session_state(bench.pool, pid)).state is None

    try:
        await until(gone, 10, "the pinning session's end")
    except RuntimeError:
        return False
    return True


async def _sample(bench: Run, pin: Pin, producer: Producer) -> Sample:
    xid = None
    if pin.held and pin.pid is not None:
        xid = (await bench_store.session_state(bench.pool, pin.pid)).xid
    return Sample(
        health=await bench_store.table_health(bench.pool),
        pinned_xid=xid,
        producer_lag_s=producer.take_lag(),
    )


async def _report(
    bench: Run,
    o: Options,
    rate: float,
    note: str,
    pin: Pin,
    released: bool,
    windows: list[Planned],
    samples: list[Sample],
    since: int,
    t0_db: datetime,
) -> PressureRun:
    def at(offset: float) -> datetime:
        return t0_db + timedelta(seconds=offset)

    bounds = [at(w.start) for w in windows] + [at(windows[-1].end)]
    spans = await bench_store.pressure_spans(bench.pool, since, bounds)
    rows: list[PressureWindow] = []
    # The backlog at each window's end comes from the events afterwards: a
    # count of queued tasks during the run would walk the dead index entries
    # the run is about, and slow the claims it measures.
    backlog = 0
    for w, span, sample in zip(windows, spans, samples, strict=True):
        seconds = w.end - w.start
        backlog += span.queued - span.started
        rows.append(
            PressureWindow(
                stage=w.stage,
                start_s=w.start,
                end_s=w.end,
                offered_per_s=span.queued / seconds,
                completed_per_s=span.succeeded / seconds,
                p50_ms=span.p50_ms,
                p99_ms=span.p99_ms,
                max_ms=span.max_ms,
                backlog=backlog,
                tasks_dead=sample.health.tasks_dead,
                schema_dead=sample.health.schema_dead,
                tasks_index_mb=sample.health.tasks_index_bytes / (1024 * 1024),
                pinned_xid=sample.pinned_xid,
                producer_lag_s=sample.producer_lag_s,
            )
        )
    clean_end = o.pressure_clean
    pinned_end = clean_end + o.pressure_pinned
    end = pinned_end + o.pressure_recovery
    pinned_tail = min(PRESSURE_TAIL, o.pressure_pinned)
    recovery_tail = min(o.pressure_window, o.pressure_recovery)
    stages = [
        *await _stages(
            bench, since, [(CLEAN, 0.0), (PINNED, clean_end), (RECOVERY, pinned_end)], end, at
        ),
        *await _stages(
            bench,
            since,
            [(f"pinned, last {pinned_tail:g} s", pinned_end - pinned_tail)],
            pinned_end,
            at,
        ),
        *await _stages(
            bench, since, [(f"recovery, last {recovery_tail:g} s", end - recovery_tail)], end, at
        ),
    ]
    clean_p99 = stages[0].p99_ms
    behind = any(r.producer_lag_s > PRESSURE_BEHIND for r in rows)
    if behind:
        print(
            f"pressure: the producer fell behind its schedule by up to "
            f"{max(r.producer_lag_s for r in rows):.1f} s: the offered rate was not offered",
            file=sys.stderr,
            flush=True,
        )
    run = PressureRun(
        offered_rate=rate,
        rate_note=note,
        workers=o.pressure_workers,
        concurrency=o.pressure_concurrency,
        pin_pid=pin.pid,
        pin_xid=pin.xid,
        released=released,
        producer_behind=behind,
        windows=rows,
        stages=stages,
        pinned_tail_over_clean_p99=_ratio(stages[3].p99_ms, clean_p99),
        recovery_tail_over_clean_p99=_ratio(stages[4].p99_ms, clean_p99),
    )
    _record(bench, run)
    return run


async def _stages(
    bench: Run,
    since: int,
    starts: list[tuple[str, float]],
    end: float,
    at: Callable[[float], datetime],
) -> list[PressureStage]:
    """Contiguous stages: each runs from its start to the next one's (the last to ``end``)."""
    offsets = [start for _, start in starts] + [end]
    spans = await bench_store.pressure_spans(bench.pool, since, [at(x) for x in offsets])
    found = []
    for (name, start), stop, span in zip(starts, offsets[1:], spans, strict=True):
        seconds = stop - start
        found.append(
            PressureStage(
                stage=name,
                seconds=seconds,
                offered_per_s=span.queued / seconds if seconds else 0.0,
                completed_per_s=span.succeeded / seconds if seconds else 0.0,
                completed_over_offered=_ratio(span.succeeded, span.queued),
                p50_ms=span.p50_ms,
                p99_ms=span.p99_ms,
                max_ms=span.max_ms,
            )
        )
    return found


def _ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return value / reference


def _record(bench: Run, run: PressureRun) -> None:
    """The figures of the table (medians over reps); the windows are in the report."""
    clean, pinned, _, pinned_tail, recovery_tail = run.stages
    for key, value in (
        ("pressure_clean_p50", clean.p50_ms),
        ("pressure_clean_p99", clean.p99_ms),
        ("pressure_pinned_p50", pinned_tail.p50_ms),
        ("pressure_pinned_p99", pinned_tail.p99_ms),
        ("pressure_recovery_p99", recovery_tail.p99_ms),
        ("pressure_offered", pinned.offered_per_s),
        ("pressure_completed", pinned.completed_per_s),
    ):
        if value is not None:
            bench.record(key, value)
    pinned_rows = [w for w in run.windows if w.stage == PINNED]
    if pinned_rows:
        bench.record("pressure_dead", float(pinned_rows[-1].tasks_dead))
