"""Result callbacks end to end: the statement that ends a task queues its
delivery (a `taskqueue.callback` task), a real worker POSTs it to a real
local server, signed per Standard Webhooks (verified here with an HMAC of our
own), retried with backoff and visible in history; internal addresses are
refused unless TASKQUEUE_WEBHOOK_ALLOW opens them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import asyncpg
import pytest

from taskqueue.audit import audit
from taskqueue.client import TaskQueue
from taskqueue.worker.expiry import ExpirySweep
from tests.api_helpers import api_client
from tests.helpers import event_types, running_worker, status_of, wait_until

KEY = b"callback-test-key-0123456789abcd"
SECRET = "whsec_" + base64.b64encode(KEY).decode()


class Receiver:
    """A local HTTP server keeping each request's headers and raw body; it
    answers the statuses in ``answers`` in turn, then 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []
        self.answer_bytes = 0  # size of each answer's body
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/done"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.answers.pop(0) if receiver.answers else 200)
                self.send_header("Content-Length", str(receiver.answer_bytes))
                self.end_headers()
                chunk = b"x" * 65536
                for start in range(0, receiver.answer_bytes, len(chunk)):
                    try:
                        self.wfile.write(chunk[: receiver.answer_bytes - start])
                    except OSError:  # the worker stopped reading at its cap
                        return

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def signed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKQUEUE_CALLBACK_SECRET", SECRET)


@pytest.fixture
def allow_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKQUEUE_WEBHOOK_ALLOW", "127.0.0.1")


def verified(headers: dict[str, str], body: bytes) -> bool:
    """A receiver's check, written from the Standard Webhooks text."""
    signed_content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(KEY, signed_content, hashlib.sha256).digest()).decode()
    offered = [s.split(",", 1)[1] for s in headers["webhook-signature"].split() if "," in s]
    return any(hmac.compare_digest(expected, o) for o in offered)


async def deliveries(pool: asyncpg.Pool, task_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT t.* FROM taskqueue.tasks t JOIN taskqueue.task_events e ON e.task_id = t.id"
        " WHERE e.event_type = 'task_queued' AND e.detail->>'callback_for' = $1::text",
        str(task_id),
    )


@pytest.mark.usefixtures("signed", "allow_loopback")
async def test_a_finished_task_posts_its_signed_outcome(
    database_url: str, pool: asyncpg.Pool, tq: TaskQueue, receiver: Receiver
) -> None:
    task = await tq.enqueue("sleep", {"seconds": 0}, callback={"url": receiver.url})
    async with running_worker(database_url):
        await wait_until(lambda: _received(receiver, 1))
        (delivery,) = await deliveries(pool, task.id)
        await wait_until(lambda: _is(pool, delivery["id"], "succeeded"))
    ((headers, body),) = receiver.requests
    assert verified(headers, body)
    assert headers["webhook-id"] == str(delivery["id"])
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    sent = json.loads(body)
    assert sent["id"] == str(task.id)
    assert (sent["status"], sent["result"], sent["error"], sent["attempts"]) == (
        "succeeded",
        {"slept": 0.0},
        None,
        1,
    )
    assert delivery["queue"] == task.queue and delivery["type"] == "taskqueue.callback"
    assert (await audit(pool)).clean


@pytest.mark.usefixtures("signed", "allow_loopback")
async def test_a_long_answer_is_read_only_to_the_cap_and_the_delivery_says_so(
    database_url: str,
    pool: asyncpg.Pool,
    tq: TaskQueue,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TASKQUEUE_WEBHOOK_MAX_RESPONSE_BYTES", "4096")
    receiver.answer_bytes = 8 * 1024 * 1024
    task = await tq.enqueue("noop", callback={"url": receiver.url})
    async with running_worker(database_url):
        await wait_until(lambda: _received(receiver, 1))
        (delivery,) = await deliveries(pool, task.id)
        await wait_until(lambda: _is(pool, delivery["id"], "succeeded"))
    result = await pool.fetchval("SELECT result FROM taskqueue.tasks WHERE id = $1", delivery["id"])
    assert result["status_code"] == 200 and result["body_truncated"] is True


@pytest.mark.usefixtures("signed", "allow_loopback")
async def test_a_refused_answer_is_retried_with_the_same_id_and_shows_in_history(
    database_url: str, pool: asyncpg.Pool, tq: TaskQueue, receiver: Receiver
) -> None:
    receiver.answers = [500, 503]
    task = await tq.enqueue("fail", callback={"url": receiver.url, "events": ["failed"]})
    async with running_worker(database_url):
        await wait_until(lambda: _is(pool, task.id, "failed"), timeout=30)
        await wait_until(lambda: _received(receiver, 3), timeout=30)
        (delivery,) = await deliveries(pool, task.id)
        await wait_until(lambda: _is(pool, delivery["id"], "succeeded"))
    assert await event_types(pool, delivery["id"]) == [
        "task_queued",
        "task_started",
        "task_retry_scheduled",
        "task_started",
        "task_retry_scheduled",
        "task_started",
        "task_succeeded",
    ]
    ids = {headers["webhook-id"] for headers, _ in receiver.requests}
    assert ids == {str(delivery["id"])}
    assert all(verified(h, b) for h, b in receiver.requests)
    sent = json.loads(receiver.requests[-1][1])
    assert sent["status"] == "failed" and "always fails" in sent["error"]
    assert sent["attempts"] == 4


@pytest.mark.usefixtures("signed")
async def test_an_internal_address_is_refused_unless_allowed(
    database_url: str, pool: asyncpg.Pool, tq: TaskQueue, receiver: Receiver
) -> None:
    task = await tq.enqueue("noop", callback={"url": receiver.url})
    async with running_worker(database_url):
        await wait_until(lambda: _is(pool, task.id, "succeeded"))
        (delivery,) = await deliveries(pool, task.id)
        await wait_until(lambda: _is(pool, delivery["id"], "failed"))
    assert receiver.requests == []
    row = await pool.fetchrow("SELECT * FROM taskqueue.tasks WHERE id = $1", delivery["id"])
    assert row is not None
    assert "refused" in row["last_error"] and "loopback" in row["last_error"]
    assert row["attempts"] == 1  # refused for good at once, not retried


async def test_only_the_events_asked_for_queue_a_delivery(
    pool: asyncpg.Pool, tq: TaskQueue
) -> None:
    wanted = await tq.enqueue(
        "noop", callback={"url": "https://h.example/", "events": ["cancelled"]}
    )
    unwanted = await tq.enqueue(
        "noop", callback={"url": "https://h.example/", "events": ["failed"]}
    )
    await tq.cancel(wanted.id)
    await tq.cancel(unwanted.id)
    (delivery,) = await deliveries(pool, wanted.id)
    assert await deliveries(pool, unwanted.id) == []
    payload = delivery["payload"]
    assert payload["url"] == "https://h.example/"
    assert payload["body"]["status"] == "cancelled"
    assert delivery["status"] == "queued"


async def test_an_expired_task_queues_its_delivery_in_the_sweep(
    pool: asyncpg.Pool, tq: TaskQueue
) -> None:
    task = await tq.enqueue("noop", ttl_seconds=60, callback={"url": "https://h.example/"})
    await pool.execute(
        "UPDATE taskqueue.tasks SET expires_at = now() - interval '1 second' WHERE id = $1",
        task.id,
    )
    await ExpirySweep(pool, worker_id="sweeper").run_once()
    (delivery,) = await deliveries(pool, task.id)
    payload = delivery["payload"]
    assert payload["body"]["status"] == "expired"
    assert "expired" in payload["body"]["error"]


async def test_the_rest_api_takes_and_checks_a_callback(database_url: str) -> None:
    async with api_client(database_url) as client:
        good = await client.post(
            "/api/tasks",
            json={"type": "noop", "callback": {"url": "https://h.example/in"}, "ttl_seconds": 30},
        )
        assert good.status_code == 201, good.text
        assert good.json()["callback"]["url"] == "https://h.example/in"
        assert good.json()["expires_at"] is not None
        bad = await client.post(
            "/api/tasks", json={"type": "noop", "callback": {"url": "file:///etc/passwd"}}
        )
        assert bad.status_code == 422 and bad.json()["field"] == "callback.url"
        batch = await client.post(
            "/api/tasks/batch",
            json={
                "tasks": [
                    {"type": "noop"},
                    {"type": "noop", "callback": {"url": "https://h.example", "events": ["x"]}},
                ]
            },
        )
        assert batch.status_code == 422 and batch.json()["field"] == "tasks[1].callback.events"
        expiry = await client.post("/api/tasks", json={"type": "noop", "ttl_seconds": -1})
        assert expiry.status_code == 422 and expiry.json()["field"] == "ttl_seconds"


async def _received(receiver: Receiver, count: int) -> bool:
    return len(receiver.requests) >= count


async def _is(pool: asyncpg.Pool, task_id: uuid.UUID, status: str) -> bool:
    return await status_of(pool, task_id) == status
