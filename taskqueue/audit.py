"""``taskqueue audit``: checks every task's event trail against the state
machine, so that an operator can prove after an incident (a crash, a
partition, a failover) that nothing ran twice at once, nothing was lost and
every counter adds up.

The rules, per task, in event order:
- the trail starts with ``task_queued``, and only once; it records
  ``queued``, or ``waiting`` for a task with unfinished parents;
- a ``waiting`` task leaves only by ``task_ready`` (to queued: its parents
  finished) or ``task_cancelled`` (a parent failed, or by hand);
- a ``task_started`` comes only from ``queued`` and carries the next attempt
  number (attempts count up; ``task_released`` and ``task_snoozed`` give their
  attempt back, ``task_requeued`` starts the count again), never more than
  ``max_retries + 1``;
- each start is followed by exactly one finishing event of the same worker
  and attempt before anything else happens to the task (``task_succeeded``,
  ``task_retry_scheduled`` only while retries are left, ``task_failed``,
  ``task_released``, ``task_snoozed``, ``task_lease_expired``,
  ``task_cancelled``);
- outside a run only ``task_cancelled`` (from queued or waiting),
  ``task_expired`` (from queued: its expires_at passed before a start; it
  keeps its attempts), ``task_ready`` (from waiting, when its parents
  finished), ``task_requeued`` (from failed or cancelled) and
  ``task_deleted`` (from a finished state) may happen, and nothing follows a
  deletion; ``task_requeued`` leads to queued, or to waiting when the task's
  parents are unfinished;
- each event's status is the status its transition leads to, and the last one
  matches the task's row (status, and attempts); a task whose row is gone
  ends with ``task_deleted``."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

import asyncpg
import msgspec

from taskqueue import store

FINISHED = ("succeeded", "failed", "cancelled", "expired")


class Event(msgspec.Struct, frozen=True):
    event_type: str
    status: str
    attempt: int
    worker_id: str | None


class TaskRow(msgspec.Struct, frozen=True):
    status: str
    attempts: int
    max_retries: int


class Violation(msgspec.Struct, frozen=True):
    task_id: uuid.UUID
    problem: str


class Report(msgspec.Struct):
    tasks: int = 0
    events: int = 0
    violations: list[Violation] = msgspec.field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.violations


class _Trail:
    """The state a trail has reached so far."""

    def __init__(self, max_retries: int | None) -> None:
        self.max_retries = max_retries
        self.status: str | None = None  # None: nothing yet; "deleted" after task_deleted
        self.charged = 0
        self.run: tuple[int, str | None] | None = None  # (attempt, worker) of the open start

    def apply(self, e: Event) -> str | None:
        """Move along ``e``; returns what is wrong with it, if anything."""
        if self.status is None:
            if e.event_type != "task_queued":
                return f"the trail starts with {e.event_type}, not task_queued"
            return self._to("waiting" if e.status == "waiting" else "queued", e)
        if self.status == "deleted":
            return f"{e.event_type} after task_deleted"
        if self.run is not None:
            return self._finish(e)
        kind = e.event_type
        if kind == "task_started":
            if self.status != "queued":
                return f"task_started while {self.status}"
            expected = self.charged + 1
            if e.attempt != expected:
                self.run = (e.attempt, e.worker_id)
                self.status = "running"
                return f"task_started with attempt {e.attempt}, expected {expected}"
            self.run = (e.attempt, e.worker_id)
            wrong_status = self._to("running", e)
            if self.max_retries is not None and e.attempt > self.max_retries + 1:
                return f"attempt {e.attempt} exceeds max_retries + 1 = {self.max_retries + 1}"
            return wrong_status
        if kind == "task_cancelled" and self.status in ("queued", "waiting"):
            return self._to("cancelled", e)
        if kind == "task_expired" and self.status == "queued":
            return self._to("expired", e)
        if kind == "task_ready" and self.status == "waiting":
            return self._to("queued", e)
        if kind == "task_requeued" and self.status in ("failed", "cancelled"):
            self.charged = 0
            return self._to("waiting" if e.status == "waiting" else "queued", e)
        if kind == "task_deleted" and self.status in FINISHED:
            self.status = "deleted"
            return None
        return f"{kind} while {self.status}"

    def _finish(self, e: Event) -> str | None:
        assert self.run is not None
        attempt, worker = self.run
        kind = e.event_type
        if kind == "task_started":
            return f"task_started (attempt {e.attempt}) while attempt {attempt} was still running"
        if (e.attempt, e.worker_id) != (attempt, worker):
            return (
                f"{kind} by {e.worker_id} for attempt {e.attempt}, but attempt {attempt}"
                f" was started by {worker}"
            )
        self.run = None
        if kind in ("task_released", "task_snoozed"):
            self.charged = attempt - 1
            return self._to("queued", e)
        self.charged = attempt
        if kind == "task_succeeded":
            return self._to("succeeded", e)
        if kind == "task_retry_scheduled":
            wrong_status = self._to("queued", e)
            if self.max_retries is not None and attempt > self.max_retries:
                return f"task_retry_scheduled after attempt {attempt} with no retries left"
            return wrong_status
        if kind == "task_failed":
            return self._to("failed", e)
        if kind == "task_cancelled":
            return self._to("cancelled", e)
        if kind == "task_lease_expired":
            expected = (
                "queued" if self.max_retries is None or attempt <= self.max_retries else "failed"
            )
            return self._to(expected, e)
        return f"{kind} ends attempt {attempt}, which is not a way out of running"

    def _to(self, status: str, e: Event) -> str | None:
        # Follow the status the event recorded (it was written with the row's
        # change), so that one wrong step does not make every later one look wrong.
        self.status = e.status
        if e.status != status:
            return f"{e.event_type} recorded status {e.status}, expected {status}"
        return None

    def end(self, task: TaskRow | None) -> str | None:
        if task is None:
            return (
                None if self.status == "deleted" else "the task's row is gone without task_deleted"
            )
        if self.status is None:
            return "the task has no events"
        if self.status != task.status:
            return f"the trail ends {self.status}, the task is {task.status}"
        expected = self.run[0] if self.run is not None else self.charged
        if task.attempts != expected:
            return f"the task has attempts = {task.attempts}, its trail says {expected}"
        return None


def check_trail(
    task_id: uuid.UUID, events: Iterable[Event], task: TaskRow | None
) -> list[Violation]:
    """Every rule one trail breaks (an empty list when it is sound)."""
    trail = _Trail(None if task is None else task.max_retries)
    problems: list[Violation] = []
    for event in events:
        problem = trail.apply(event)
        if problem is not None:
            problems.append(Violation(task_id, problem))
    problem = trail.end(task)
    if problem is not None:
        problems.append(Violation(task_id, problem))
    return problems


async def audit(pool: asyncpg.Pool, since: datetime | None = None) -> Report:
    """Check every trail (of tasks created since ``since``), streaming them."""
    report = Report()
    current: uuid.UUID | None = None
    events: list[Event] = []
    task: TaskRow | None = None

    def close() -> None:
        if current is not None:
            report.tasks += 1
            report.violations.extend(check_trail(current, events, task))

    async with pool.acquire() as conn, conn.transaction(readonly=True):
        async for r in store.audit_trails(conn, since):
            if r["task_id"] != current:
                close()
                current, events = r["task_id"], []
                task = (
                    TaskRow(r["task_status"], r["task_attempts"], r["max_retries"])
                    if r["task_exists"]
                    else None
                )
            if r["event_id"] is not None:
                report.events += 1
                events.append(
                    Event(r["event_type"], r["event_status"], r["attempt"], r["worker_id"])
                )
    close()
    return report
