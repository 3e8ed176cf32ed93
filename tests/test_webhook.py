"""The built-in webhook type makes a real HTTP POST to a real local server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import asyncpg
import pytest

from taskqueue.client import TaskQueue
from tests.helpers import all_in_status, event_types, running_worker, wait_until


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], object]] = []
        self.status_for: dict[str, int] = {}


@pytest.fixture
def receiver() -> Iterator[tuple[str, Receiver]]:
    received = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.requests.append(
                (self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(body))
            )
            self.send_response(received.status_for.get(self.path, 200))
            self.end_headers()

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_webhook_posts_json_and_succeeds_on_2xx(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str, receiver: tuple[str, Receiver]
) -> None:
    base, received = receiver
    task = await tq.enqueue(
        "webhook",
        {"url": f"{base}/hooks/order", "body": {"order": 42}, "headers": {"X-Shop": "a"}},
    )
    async with running_worker(database_url):
        await wait_until(lambda: all_in_status(pool, [task.id], "succeeded"))
    ((path, headers, body),) = received.requests
    assert (path, body) == ("/hooks/order", {"order": 42})
    assert headers["content-type"] == "application/json"
    assert headers["x-shop"] == "a"
    assert headers["x-taskqueue-task-id"] == str(task.id)
    assert (await tq.get(task.id)).result == {"status_code": 200}


async def test_webhook_non_2xx_fails_and_retries(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str, receiver: tuple[str, Receiver]
) -> None:
    base, received = receiver
    received.status_for["/down"] = 503
    task = await tq.enqueue("webhook", {"url": f"{base}/down", "body": None}, max_retries=1)
    async with running_worker(database_url):
        await wait_until(lambda: all_in_status(pool, [task.id], "failed"))
    assert len(received.requests) == 2  # first attempt and one retry
    assert (await tq.get(task.id)).last_error == f"WebhookFailed: {base}/down answered HTTP 503"
    assert await event_types(pool, task.id) == [
        "task_queued",
        "task_started",
        "task_retry_scheduled",
        "task_started",
        "task_failed",
    ]
