"""The worker's scheduler loop: schedules defined in code, and real worker
processes firing every-second schedules, each slot exactly once, through a
kill -9 and a restart."""

from __future__ import annotations

import asyncio
import signal
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.registry import Registry, TaskContext, load_registry
from taskqueue.schedules import InvalidSchedule
from taskqueue.worker.scheduler import Scheduler
from tests.helpers import run_audit, wait_until, worker_process


def test_code_defines_schedules_on_handlers_and_by_name() -> None:
    registry = Registry()

    @registry.periodic("*/5 * * * *", name="digest", timezone="Europe/Berlin", priority=3)
    async def send_digest(payload: Any, ctx: TaskContext) -> None:
        pass

    registry.schedule("ping", every_seconds=30, type="noop", overlap="skip")
    # Alone, periodic registers the handler as a type named after the schedule.
    assert registry.require("digest").handler is send_digest
    combined = load_registry([])
    combined.include(registry)
    assert [(s.name, s.type, s.cron, s.every_seconds) for s in combined.schedules()] == [
        ("digest", "digest", "*/5 * * * *", None),
        ("ping", "noop", None, 30),
    ]
    assert combined.schedules()[0].timezone == "Europe/Berlin"
    assert combined.schedules()[1].overlap == "skip"

    # Mistakes fail the import, not a worker.
    with pytest.raises(InvalidSchedule, match="cron: Bad minute"):
        registry.schedule("bad", cron="61 * * * *", type="noop")
    with pytest.raises(InvalidSchedule, match="timezone"):
        registry.schedule("bad", cron="* * * * *", timezone="Europe/Atlantis", type="noop")
    with pytest.raises(ValueError, match="already defined differently"):
        registry.schedule("ping", every_seconds=60, type="noop")


def test_periodic_above_task_fires_that_task_type() -> None:
    registry = load_registry(["tests.scheduled_handlers"])
    (heartbeat, nightly) = registry.schedules()
    assert (nightly.name, nightly.type, nightly.payload) == (
        "nightly-digest",
        "digest",
        {"kind": "digest"},
    )
    assert "nightly-digest" not in registry  # no second type for the same handler
    assert (heartbeat.name, heartbeat.type, heartbeat.cron) == (
        "hourly-heartbeat",
        "noop",
        "@hourly",
    )


async def test_the_loop_defines_the_code_schedules_then_fires_with_its_worker_id(
    pool: asyncpg.Pool, tq: TaskQueue
) -> None:
    loop = Scheduler(pool, load_registry(["tests.scheduled_handlers"]), worker_id="w-7")
    assert await loop.run_once() == []
    defined = {s.name: s for s in await tq.list_schedules()}
    assert set(defined) == {"nightly-digest", "hourly-heartbeat"}
    nightly = defined["nightly-digest"]
    assert (nightly.source, nightly.priority, nightly.queue, nightly.timezone) == (
        "code",
        5,
        "default",
        "Europe/Berlin",
    )
    assert nightly.next_run_at.astimezone(nightly_zone()).hour == 3

    fired = await loop.run_once(now=nightly.next_run_at + timedelta(seconds=1))
    assert "nightly-digest" in {r.name for r in fired}
    (task,) = await tq.list(schedule="nightly-digest")
    (event,) = await tq.history(task.id)
    assert (task.type, task.priority, event.worker_id) == ("digest", 5, "w-7")


def nightly_zone() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Berlin")


async def test_an_operators_pause_survives_workers_restarting_with_the_code(
    pool: asyncpg.Pool, tq: TaskQueue, database_url: str
) -> None:
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    handlers = {"handlers": "tests.scheduled_handlers"}

    async def defined() -> bool:
        return len(await tq.list_schedules()) == 2

    async with worker_process(database_url, log, **handlers) as worker:
        await wait_until(defined, timeout=30)
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(worker.wait(), 30) == 0, log.read_text()

    await tq.pause_schedule("nightly-digest")
    before = await tq.get_schedule("nightly-digest")
    # Drift the code will put right: the definition is the code's, the pause the operator's.
    await pool.execute(
        "UPDATE taskqueue.schedules SET priority = 0, payload = '{}' WHERE name = 'nightly-digest'"
    )

    async def restored() -> bool:
        return (await tq.get_schedule("nightly-digest")).priority == 5

    async with worker_process(database_url, log, **handlers) as worker:
        await wait_until(restored, timeout=30)
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(worker.wait(), 30) == 0, log.read_text()
    after = await tq.get_schedule("nightly-digest")
    assert after.paused
    assert after.payload == {"kind": "digest"}
    assert after.next_run_at == before.next_run_at  # the timing is unchanged: so is its slot
    log.unlink()


async def _slots(pool: asyncpg.Pool, name: str) -> list[datetime]:
    rows = await pool.fetch(
        "SELECT slot FROM taskqueue.tasks WHERE schedule = $1 ORDER BY slot", name
    )
    return [r["slot"] for r in rows]


async def test_four_workers_fire_each_second_exactly_once_through_a_kill_9_and_a_restart(
    pool: asyncpg.Pool, tq: TaskQueue, database_url: str
) -> None:
    await tq.add_schedule("every-second", every_seconds=1, type="noop")
    await tq.add_schedule("cron-second", cron="* * * * * *", type="noop")
    start = await store.schedule_now(pool)
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    settings = {"lease_seconds": "6"}

    async def fired_by(worker_id: str) -> bool:
        count = await pool.fetchval(
            "SELECT count(*) FROM taskqueue.task_events"
            " WHERE event_type = 'task_queued' AND worker_id = $1",
            worker_id,
        )
        return bool(count)

    def covered(seconds: int) -> Any:
        async def check() -> bool:
            slots = await _slots(pool, "every-second")
            return bool(slots) and slots[-1] >= start + timedelta(seconds=seconds)

        return check

    async with (
        worker_process(database_url, log, **settings, worker_id="w1") as w1,
        worker_process(database_url, log, **settings, worker_id="w2") as w2,
        worker_process(database_url, log, **settings, worker_id="w3") as w3,
        worker_process(database_url, log, **settings, worker_id="w4") as w4,
    ):
        await wait_until(covered(6), timeout=30)
        await wait_until(lambda: fired_by("w2"), timeout=30)
        w2.kill()
        assert await w2.wait() == -signal.SIGKILL
        async with worker_process(database_url, log, **settings, worker_id="w2b") as w2b:

            async def restarted() -> bool:
                return any(w.id == "w2b" and w.state == "running" for w in await tq.workers())

            # Registered, so running (and stopped gracefully below), however
            # slowly it starts on a busy machine.
            await wait_until(restarted, timeout=40)
            await wait_until(covered(16), timeout=40)
            await tq.pause_schedule("every-second")
            await tq.pause_schedule("cron-second")

            async def all_succeeded() -> bool:
                left = await pool.fetchval(
                    "SELECT count(*) FROM taskqueue.tasks WHERE status <> 'succeeded'"
                )
                return bool(left == 0)

            await wait_until(all_succeeded, timeout=60)  # the killed worker's too, rescued
            for proc in (w1, w3, w4, w2b):
                proc.send_signal(signal.SIGTERM)
            for proc in (w1, w3, w4, w2b):
                assert await asyncio.wait_for(proc.wait(), 30) == 0, log.read_text()[-3000:]

    firers = await pool.fetch(
        "SELECT worker_id, count(*) FROM taskqueue.task_events"
        " WHERE event_type = 'task_queued' GROUP BY worker_id ORDER BY worker_id"
    )
    print("\nslots fired per worker:", {r["worker_id"]: r["count"] for r in firers})
    for name in ("every-second", "cron-second"):
        slots = await _slots(pool, name)
        assert len(slots) >= 16
        assert len(set(slots)) == len(slots), f"{name}: a slot fired twice"
        assert slots == [slots[0] + timedelta(seconds=i) for i in range(len(slots))], (
            f"{name}: a slot was skipped"
        )
        assert slots[0] <= start + timedelta(seconds=2)
    missed = await pool.fetchval(
        "SELECT count(*) FROM taskqueue.schedule_fires WHERE outcome <> 'fired'"
    )
    assert missed == 0
    assert len(firers) >= 2  # the work was shared, with no leader
    assert await run_audit(pool) == []
    log.unlink()
