"""Following taskqueue.task_events as it grows: the live event stream.

One ``EventTail`` reads the events after the last one it returned, a batch
per poll, with their task's queue and type. Event ids come from a sequence,
so a transaction that took an id may commit after a later one: the tail
returns events only up to the first missing id, reads the rest again while
the gap is young, and after ``gap_timeout`` passes over it (a rolled-back
insert leaves a gap for ever). Ids it passed over are looked up again for a while,
and an event that turns up late is returned then, out of order.

The API runs one tail per process and fans it out to every subscriber
(``taskqueue.api.stream``); ``TaskQueue.events()`` runs one of its own."""

from __future__ import annotations

import time
from collections.abc import Callable

from taskqueue import store
from taskqueue.models import StreamEvent

GAP_TIMEOUT_SECONDS = 2.0  # how long a missing id holds back the events after it
LATE_WATCH_SECONDS = 60.0  # how long a passed-over id is still looked for
BATCH = 1000


class EventTail:
    def __init__(
        self,
        conn: store.Executor,
        after_id: int,
        *,
        gap_timeout: float = GAP_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._conn = conn
        self.last_id = after_id  # everything up to here was returned or passed over
        self._gap_timeout = gap_timeout
        self._clock = clock
        self._gap_seen_at: float | None = None  # when the current gap was first seen
        self._passed_over: dict[int, float] = {}  # id -> when it was passed over
        self.polls = 0
        self.statements = 0  # run by this tail (its readers never add any)

    @classmethod
    async def from_now(cls, conn: store.Executor) -> EventTail:
        return cls(conn, await store.last_event_id(conn))

    async def poll(self) -> list[StreamEvent]:
        """The events that can be returned now, in id order (late ones last)."""
        self.polls += 1
        self.statements += 1
        # Read from the last id returned: what lies behind a gap is read again
        # until the gap fills (gaps last milliseconds; the batch is bounded).
        fresh = await store.events_after(self._conn, self.last_id, BATCH)
        ready: list[StreamEvent] = []
        expected = self.last_id + 1
        now = self._clock()
        for event in fresh:
            if event.id != expected:
                if self._gap_seen_at is None:
                    self._gap_seen_at = now
                if now - self._gap_seen_at < self._gap_timeout:
                    break
                # The gap outlived its timeout: pass over it, but keep watching.
                for missing in range(expected, event.id):
                    self._passed_over[missing] = now
            self._gap_seen_at = None
            ready.append(event)
            expected = event.id + 1
            self.last_id = event.id
        return ready + await self._late(now)

    async def _late(self, now: float) -> list[StreamEvent]:
        if not self._passed_over:
            return []
        for missing, since in list(self._passed_over.items()):
            if now - since > LATE_WATCH_SECONDS:
                del self._passed_over[missing]
        if not self._passed_over:
            return []
        found = await store.events_by_id(self._conn, list(self._passed_over))
        self.statements += 1
        for event in found:
            del self._passed_over[event.id]
        return found


def matches(
    event: StreamEvent,
    *,
    queue: str | None = None,
    task_type: str | None = None,
    task_id: object = None,
) -> bool:
    return (
        (queue is None or event.queue == queue)
        and (task_type is None or event.type == task_type)
        and (task_id is None or event.task_id == task_id)
    )
