"""GET /api/events: live task events over SSE from a real API process,
resuming after an API restart without a gap, one shared reading of the
database for any number of subscribers, and a shutdown that never waits on
open streams."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt

from taskqueue.api.stream import EventHub, Filters
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask
from tests.api_helpers import api_process, free_port
from tests.helpers import running_worker, wait_until


class Sse:
    """Reads an SSE response into (id, event, data) messages."""

    def __init__(self) -> None:
        self.messages: list[tuple[int | None, str, Any]] = []
        self.comments = 0
        self.opened = False  # the server's first line ("retry:") arrived: live from here

    async def read(self, response: httpx.Response) -> None:
        event_id: int | None = None
        kind = "message"
        data: list[str] = []
        async for line in response.aiter_lines():
            if line == "":
                if data:
                    self.messages.append((event_id, kind, json.loads("\n".join(data))))
                event_id, kind, data = None, "message", []
            elif line.startswith(":"):
                self.comments += 1
            elif line.startswith("retry: "):
                self.opened = True
            elif line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])

    def tasks(self) -> list[tuple[int, str, uuid.UUID]]:
        return [
            (event_id, data["event_type"], uuid.UUID(data["task_id"]))
            for event_id, kind, data in self.messages
            if kind == "task" and event_id is not None
        ]


@contextlib.asynccontextmanager
async def listening(
    base: str, path: str = "/api/events", headers: dict[str, str] | None = None
) -> AsyncIterator[Sse]:
    sse = Sse()
    async with (
        httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(30, read=None)) as client,
        client.stream("GET", path, headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reading = asyncio.create_task(sse.read(response))
        try:
            await wait_until(lambda: _opened(sse))
            yield sse
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)


async def _opened(sse: Sse) -> bool:
    return sse.opened


async def test_task_events_arrive_live_filtered_and_resume_after_an_api_restart(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    port = free_port()
    async with api_process(database_url, log, port=port) as (base, _):
        async with (
            listening(base) as everything,
            listening(base, "/api/events?queue=mail") as mail_only,
        ):
            first = await tq.enqueue("noop", queue="mail")
            other = await tq.enqueue("noop")
            async with running_worker(database_url, queues=("mail", "default")):
                await wait_until(lambda: _seen(everything, [first.id, other.id], "task_succeeded"))
            await wait_until(lambda: _seen(mail_only, [first.id], "task_succeeded"))
        got = everything.tasks()
        assert [e for _, e, t in got if t == first.id] == [
            "task_queued",
            "task_started",
            "task_succeeded",
        ]
        assert [i for i, _, _ in got] == sorted(i for i, _, _ in got)
        assert {t for _, _, t in mail_only.tasks()} == {first.id}
        last_seen = got[-1][0]
    # The API is down while more happens; a new one resumes from Last-Event-ID.
    missed = await tq.enqueue_many([NewTask(type="noop") for _ in range(5)])
    async with (
        api_process(database_url, log, port=port) as (base, _),
        listening(base, headers={"Last-Event-ID": str(last_seen)}) as resumed,
    ):
        await wait_until(lambda: _seen(resumed, [t.id for t in missed], "task_queued"))
        late = await tq.enqueue("noop")
        await wait_until(lambda: _seen(resumed, [late.id], "task_queued"))
    expected = [
        r["id"]
        for r in await pool.fetch(
            "SELECT id FROM taskqueue.task_events WHERE id > $1 ORDER BY id", last_seen
        )
    ]
    assert [i for i, _, _ in resumed.tasks()] == expected  # no gap, nothing twice
    log.unlink()


async def test_two_hundred_subscribers_share_one_reading_of_the_database(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    hub = EventHub(tq.views, poll_seconds=0.05)

    async def subscriber(received: list[bytes], count: int) -> None:
        async for message in hub.stream(Filters()):
            received.append(message)
            if sum(b"event: task" in m for m in received) >= count:
                return

    async def run(subscribers: int) -> tuple[int, float]:
        inboxes: list[list[bytes]] = [[] for _ in range(subscribers)]
        readers = [asyncio.create_task(subscriber(box, 20)) for box in inboxes]
        await wait_until(lambda: _subscribed(hub, subscribers))
        before, started = hub.statements, time.monotonic()
        await tq.enqueue_many([NewTask(type="noop") for _ in range(20)])
        await asyncio.wait_for(asyncio.gather(*readers), 30)
        assert all(sum(b"event: task" in m for m in box) == 20 for box in inboxes)
        return hub.statements - before, time.monotonic() - started

    one, one_took = await run(1)
    many, many_took = await run(200)
    print(f"\nevent hub: {one} statements for 1 subscriber, {many} for 200")
    assert one <= _polls_allowed(one_took)
    assert many <= _polls_allowed(many_took)  # not 200 times as many
    hub.close()


async def test_shutdown_does_not_wait_on_open_streams(database_url: str) -> None:
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    async with api_process(database_url, log) as (base, proc):
        streams = [listening(base) for _ in range(3)]
        for stream in streams:
            await stream.__aenter__()
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        returncode = await asyncio.wait_for(proc.wait(), 10)
        took = time.monotonic() - started
        for stream in streams:
            with contextlib.suppress(Exception):
                await stream.__aexit__(None, None, None)
    assert returncode == 0, log.read_text()
    assert took < 3, took
    log.unlink()


def _polls_allowed(seconds: float) -> float:
    """Statements a hub runs in ``seconds``: a tail poll every 0.05 s, the
    operator log and the registry every second, and its first three."""
    return seconds / 0.05 + 2 * (seconds / 1.0 + 1) + 3


async def test_bad_stream_requests_get_a_422_naming_what_is_wrong(database_url: str) -> None:
    from tests.api_helpers import api_client

    async with api_client(database_url) as client:
        for path, headers, field in (
            ("/api/events?task_id=not-a-uuid", {}, "task_id"),
            ("/api/events?colour=red", {}, "colour"),
            ("/api/events", {"Last-Event-ID": "yesterday"}, "last-event-id"),
            ("/api/events", {"Last-Event-ID": "-5"}, "last-event-id"),
        ):
            response = await client.get(path, headers=headers)
            assert (response.status_code, response.json().get("field")) == (422, field), path


async def _seen(sse: Sse, ids: list[uuid.UUID], event_type: str) -> bool:
    seen = {t for _, e, t in sse.tasks() if e == event_type}
    return all(i in seen for i in ids)


async def _subscribed(hub: EventHub, count: int) -> bool:
    return hub.subscribers >= count


async def _read_until_closed(base: str, headers: dict[str, str]) -> tuple[str, float]:
    started = time.monotonic()
    text = ""
    async with (
        httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(20)) as client,
        client.stream("GET", "/api/events", headers=headers) as response,
    ):
        assert response.status_code == 200
        async for chunk in response.aiter_text():
            text += chunk
    return text, time.monotonic() - started


async def test_a_stream_ends_when_its_jwt_or_session_expires(
    database_url: str, tmp_path: Path
) -> None:
    secret = "jwt-secret-for-tests-0123456789abcdef"
    async with api_process(database_url, tmp_path / "api.log", jwt_secret=secret) as (base, _):
        # Made once the API is up: a loaded machine may take seconds to start it.
        expires = int(time.time()) + 4
        token = jwt.encode({"sub": "s", "scope": "read write", "exp": expires}, secret)
        async with httpx.AsyncClient(base_url=base) as client:
            signed = await client.post("/login", json={"token": token})
            assert signed.status_code == 200
            cookie = signed.cookies["taskqueue_session"]
        (by_token, token_took), (by_session, _) = await asyncio.gather(
            _read_until_closed(base, {"Authorization": f"Bearer {token}"}),
            _read_until_closed(base, {"Cookie": f"taskqueue_session={cookie}"}),
        )
    for text in (by_token, by_session):
        assert text.startswith("retry: "), text
        assert text.endswith('event: expired\ndata: {"message":"the credential expired"}\n\n')
    assert time.time() >= expires and token_took < 15


async def test_a_session_stream_ends_at_the_next_heartbeat_after_sign_out(tq: TaskQueue) -> None:
    hub = EventHub(tq.views, poll_seconds=0.05, heartbeat_seconds=0.1)
    signed_in = True

    async def alive() -> bool:
        return signed_in

    received: list[bytes] = []

    async def listen() -> None:
        async for message in hub.stream(Filters(), alive=alive):
            received.append(message)

    reading = asyncio.create_task(listen())
    await wait_until(lambda: _has(received, b": keep-alive"))
    signed_in = False
    await asyncio.wait_for(reading, 10)
    assert received[-1] == b'event: expired\ndata: {"message":"the session was signed out"}\n\n'
    hub.close()


async def _has(received: list[bytes], part: bytes) -> bool:
    return any(part in message for message in received)
