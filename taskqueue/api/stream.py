"""The live event stream of one API process: one tail of task_events (and of
the operator log and the worker registry), fanned out to every open stream.
The database's load does not grow with the number of subscribers: they only
ever read from memory. The tail runs while someone listens.

A stream resumes from ``Last-Event-ID``: from the recent events kept in
memory when they reach back that far, else from the database (after an API
restart, say), then goes on live without a gap.

A subscriber that cannot keep up (its queue of unsent events fills) is cut
off; its client reconnects with Last-Event-ID and catches up from the
database. Closing the hub (on shutdown) ends every stream at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import msgspec

from taskqueue.events import EventTail, matches
from taskqueue.models import OperatorAction, StreamEvent, WorkerInfo
from taskqueue.views import Views

logger = logging.getLogger("taskqueue.api.stream")

POLL_SECONDS = 0.25  # task events
SLOW_POLL_SECONDS = 1.0  # the operator log and the worker registry
HEARTBEAT_SECONDS = 15.0
RECENT_EVENTS = 10_000  # kept in memory for resuming streams
SUBSCRIBER_QUEUE = 10_000  # unsent messages before a slow subscriber is cut off
CATCH_UP_PAGE = 1000

_encode = msgspec.json.Encoder().encode


class TaskEventOut(msgspec.Struct, kw_only=True):
    """The data of an SSE ``task`` event."""

    task_id: uuid.UUID
    event_type: str
    status: str
    queue: str | None
    type: str | None
    attempt: int
    worker_id: str | None
    at: str


def task_message(event: StreamEvent) -> bytes:
    data = TaskEventOut(
        task_id=event.task_id,
        event_type=event.event_type,
        status=event.status,
        queue=event.queue,
        type=event.type,
        attempt=event.attempt,
        worker_id=event.worker_id,
        at=event.at.isoformat(),
    )
    return b"id: %d\nevent: task\ndata: %s\n\n" % (event.id, _encode(data))


def _message(kind: str, data: object) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (kind.encode(), _encode(data))


@dataclass(frozen=True, slots=True)
class Filters:
    queue: str | None = None
    task_type: str | None = None
    task_id: uuid.UUID | None = None
    tenant: str | None = None  # only this tenant's tasks, and no operator news

    def wants_task(self, event: StreamEvent) -> bool:
        return (self.tenant is None or event.tenant == self.tenant) and matches(
            event, queue=self.queue, task_type=self.task_type, task_id=self.task_id
        )

    def wants_other(self, queues: list[str] | None) -> bool:
        """Queue and worker changes go to streams not about one task, and to
        a queue's stream when they concern that queue; never to a tenant's."""
        if self.task_id is not None or self.tenant is not None:
            return False
        return self.queue is None or queues is None or self.queue in queues


class _Subscriber:
    def __init__(self, filters: Filters) -> None:
        self.filters = filters
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(SUBSCRIBER_QUEUE)

    def offer(self, message: bytes) -> bool:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            return False
        return True


class EventHub:
    def __init__(
        self,
        views: Views,
        *,
        poll_seconds: float = POLL_SECONDS,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        self._views = views
        self._poll_seconds = poll_seconds
        self._heartbeat_seconds = heartbeat_seconds
        self._subscribers: set[_Subscriber] = set()
        self._recent: deque[StreamEvent] = deque(maxlen=RECENT_EVENTS)
        self._tail: EventTail | None = None
        self._last_action_id = 0
        self._workers: dict[str, tuple[str, int]] = {}
        self._runner: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self._closing = asyncio.Event()
        self.statements = 0  # run by the hub, for all its subscribers together

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def close(self) -> None:
        """End every stream now (shutdown)."""
        self._closing.set()
        for subscriber in self._subscribers:
            with contextlib.suppress(asyncio.QueueFull):
                subscriber.queue.put_nowait(None)

    async def stream(
        self,
        filters: Filters,
        *,
        last_event_id: int | None = None,
        until: float | None = None,
        alive: Callable[[], Awaitable[bool]] | None = None,
    ) -> AsyncIterator[bytes]:
        """SSE bytes for one subscriber until it goes away, the hub closes,
        ``until`` (Unix seconds: when the token or session that opened it
        expires) passes or, asked at each heartbeat, ``alive()`` says the
        session was signed out; then an ``expired`` event, and it ends."""
        subscriber = _Subscriber(filters)
        self._subscribers.add(subscriber)
        try:
            await self._ensure_running()
            yield b"retry: 2000\n\n"
            assert self._tail is not None
            if last_event_id is not None:
                async for missed in self._catch_up(filters, last_event_id, self._tail.last_id):
                    yield missed
            while not self._closing.is_set():
                wait = self._heartbeat_seconds
                if until is not None:
                    left = until - time.time()
                    if left <= 0:
                        yield _message("expired", {"message": "the credential expired"})
                        return
                    wait = min(wait, left)
                try:
                    live = await asyncio.wait_for(subscriber.queue.get(), wait)
                except TimeoutError:
                    if alive is not None and not await alive():
                        yield _message("expired", {"message": "the session was signed out"})
                        return
                    if until is None or until > time.time():
                        yield b": keep-alive\n\n"
                    continue
                if live is None:
                    return
                yield live
        finally:
            self._subscribers.discard(subscriber)

    async def _catch_up(self, filters: Filters, after: int, up_to: int) -> AsyncIterator[bytes]:
        """Events after ``after`` up to ``up_to`` (the live tail's position
        when this stream joined): from memory if it reaches back that far."""
        if self._recent and self._recent[0].id <= after + 1:
            for event in list(self._recent):
                if after < event.id <= up_to and filters.wants_task(event):
                    yield task_message(event)
            return
        while after < up_to:
            page = await self._views.events_after(after, CATCH_UP_PAGE)
            page = [e for e in page if e.id <= up_to]
            if not page:
                return
            for event in page:
                if filters.wants_task(event):
                    yield task_message(event)
            after = page[-1].id

    async def _ensure_running(self) -> None:
        if self._runner is None or self._runner.done():
            self._started.clear()
            self._runner = asyncio.create_task(self._run(), name="event hub")
        await self._started.wait()

    async def _run(self) -> None:
        """Poll while anyone listens; then stop (a new listener starts again
        from that moment)."""
        try:
            self._tail = await self._views.tail()
            self._last_action_id = await self._views.last_action_id()
            self._workers = {w.id: (w.state, w.in_flight) for w in await self._views.workers()}
            self.statements += 3
        finally:
            self._started.set()
        slow_due = time.monotonic() + SLOW_POLL_SECONDS
        while self._subscribers and not self._closing.is_set():
            try:
                await self._poll_events()
                if time.monotonic() >= slow_due:
                    slow_due = time.monotonic() + SLOW_POLL_SECONDS
                    await self._poll_actions()
                    await self._poll_workers()
            except Exception as exc:
                logger.warning("event stream poll failed (%s); retrying", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self._poll_seconds)

    async def _poll_events(self) -> None:
        assert self._tail is not None
        before = self._tail.statements
        events = await self._tail.poll()
        self.statements += self._tail.statements - before
        for event in events:
            self._recent.append(event)
            message = task_message(event)
            for subscriber in list(self._subscribers):
                if subscriber.filters.wants_task(event):
                    self._send(subscriber, message)

    async def _poll_actions(self) -> None:
        actions = await self._views.actions_after(self._last_action_id)
        self.statements += 1
        for action in actions:
            self._last_action_id = max(self._last_action_id, action.id)
            self._broadcast(
                "queue" if _queue_of(action) else "action", _action_data(action), _queues_of(action)
            )

    async def _poll_workers(self) -> None:
        workers = await self._views.workers()
        self.statements += 1
        seen: dict[str, tuple[str, int]] = {}
        for worker in workers:
            seen[worker.id] = (worker.state, worker.in_flight)
            if self._workers.get(worker.id) != seen[worker.id]:
                self._broadcast("worker", _worker_data(worker), worker.queues)
        self._workers = seen

    def _broadcast(self, kind: str, data: object, queues: list[str] | None) -> None:
        message = _message(kind, data)
        for subscriber in list(self._subscribers):
            if subscriber.filters.wants_other(queues):
                self._send(subscriber, message)

    def _send(self, subscriber: _Subscriber, message: bytes) -> None:
        if not subscriber.offer(message):
            # Too far behind: cut it off; its client resumes from the database.
            logger.warning("an event stream fell behind and was closed")
            self._subscribers.discard(subscriber)
            with contextlib.suppress(asyncio.QueueEmpty):
                subscriber.queue.get_nowait()
            subscriber.queue.put_nowait(None)


def _queue_of(action: OperatorAction) -> str | None:
    scope = action.scope
    queue = scope.get("queue") if isinstance(scope, dict) else None
    return queue if isinstance(queue, str) else None


def _queues_of(action: OperatorAction) -> list[str] | None:
    queue = _queue_of(action)
    return None if queue is None else [queue]


def _action_data(action: OperatorAction) -> dict[str, object]:
    return {
        "id": action.id,
        "at": action.at.isoformat(),
        "actor": action.actor,
        "action": action.action,
        "scope": action.scope,
        "result": action.result,
    }


def _worker_data(worker: WorkerInfo) -> dict[str, object]:
    return {
        "id": worker.id,
        "state": worker.state,
        "in_flight": worker.in_flight,
        "queues": worker.queues,
        "host": worker.host,
        "last_heartbeat_at": worker.last_heartbeat_at.isoformat(),
    }
