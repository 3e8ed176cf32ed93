"""A task's history as the Task page shows it: one row per attempt (who ran
it, when it started and ended, how it ended, with what error)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from taskqueue.models import TaskEvent

# Events that end a running attempt, and the outcome the page names.
ENDINGS = {
    "task_succeeded": "succeeded",
    "task_retry_scheduled": "failed, retry scheduled",
    "task_failed": "failed",
    "task_lease_expired": "lease expired",
    "task_released": "released",
    "task_snoozed": "snoozed",
    "task_cancelled": "cancelled",
}


class Attempt(msgspec.Struct, kw_only=True):
    run: int  # 1, 2, 3 … over the whole history (a manual retry starts attempts at 1 again)
    attempt: int
    worker_id: str | None
    started_at: datetime
    ended_at: datetime | None = None
    outcome: str = "running"
    error: str | None = None

    @property
    def duration_seconds(self) -> float | None:
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


def attempts(events: list[TaskEvent]) -> list[Attempt]:
    """Attempts in the order they started; the last may still be running."""
    runs: list[Attempt] = []
    for event in events:
        if event.event_type == "task_started":
            runs.append(
                Attempt(
                    run=len(runs) + 1,
                    attempt=event.attempt,
                    worker_id=event.worker_id,
                    started_at=event.at,
                )
            )
            continue
        outcome = ENDINGS.get(event.event_type)
        if outcome is None or not runs:
            continue
        current = runs[-1]
        if current.ended_at is not None or current.attempt != event.attempt:
            continue  # e.g. a queued task cancelled: no attempt was running
        current.ended_at = event.at
        current.outcome = outcome
        current.error = event.error
    return runs
