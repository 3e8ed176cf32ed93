"""Firing due schedules: one worker's check, run by every worker at once.

A slot becomes a task at most once because the database says so (see
``queries/fire_schedule.sql``), so any number of workers may run
``fire_due`` at the same time and no worker leads."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskqueue import store
from taskqueue.errors import InvalidSchedule
from taskqueue.models import uuid7
from taskqueue.schedules.timing import DUE_BATCH, parse_timing, plan_firing

logger = logging.getLogger("taskqueue.schedules")


@dataclass(frozen=True, slots=True)
class FireResult:
    """What one worker's check fired for one schedule."""

    name: str
    fired: list[datetime]
    skipped: list[datetime]
    missed: dict[str, Any] | None


async def fire_due(
    conn: store.Executor,
    *,
    now: datetime | None = None,
    limit: int = DUE_BATCH,
    worker_id: str | None = None,
) -> tuple[list[FireResult], bool]:
    """One check: fire every due slot of up to ``limit`` due schedules at
    ``now`` (the database's clock when None); ``worker_id`` goes into the
    fired tasks' task_queued events. Returns what this caller fired (slots
    another worker fired first are not in it) and whether the check was full
    (more may be due)."""
    due = await store.due_schedules(conn, now=now, limit=limit)
    # Workers that see the same due schedules start at different ones, so
    # that with many due they share the work instead of queueing on one row.
    random.shuffle(due)
    results: list[FireResult] = []
    for schedule in due:
        try:
            timing = parse_timing(schedule.cron, schedule.every_seconds, schedule.timezone)
        except InvalidSchedule as exc:  # a zone gone from this host's tzdata, a row edited by hand
            logger.error("schedule %r cannot be evaluated here: %s", schedule.name, exc)
            continue
        plan = plan_firing(
            timing, due=schedule.next_run_at, now=schedule.now, catch_up=schedule.catch_up
        )
        fired = await store.fire_schedule(
            conn,
            schedule.name,
            expected=schedule.next_run_at,
            next_run_at=plan.next_run_at,
            slots=plan.slots,
            task_ids=[uuid7() for _ in plan.slots],
            missed=plan.missed,
            worker_id=worker_id,
        )
        if not fired.advanced:
            continue
        if plan.missed is not None:
            logger.warning(
                "schedule %r: %s%d late slot(s) from %s to %s not fired (catch_up=%s)",
                schedule.name,
                "" if plan.missed["exact"] else "at least ",
                plan.missed["slots"],
                plan.missed["first"],
                plan.missed["last"],
                schedule.catch_up.value,
            )
        if fired.already_recorded:
            logger.warning(
                "schedule %r: %d slot(s) were fired before and were not fired again",
                schedule.name,
                fired.already_recorded,
            )
        results.append(FireResult(schedule.name, fired.fired, fired.skipped, plan.missed))
    return results, len(due) == limit
