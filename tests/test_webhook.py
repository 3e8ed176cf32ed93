"""The built-in webhook type: a real HTTP POST to a real local server, the
destination policy (loopback refused unless TASKQUEUE_WEBHOOK_ALLOW opens
it), header rules and redaction of secrets in errors, events and logs."""

from __future__ import annotations

import json
import logging
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import asyncpg
import pytest

from taskqueue import handlers, outbound
from taskqueue.client import TaskQueue
from taskqueue.config import ConfigError, Settings
from taskqueue.destinations import Address
from taskqueue.errors import InvalidTask, Permanent
from tests.api_helpers import api_client
from tests.helpers import (
    all_in_status,
    event_types,
    running_worker,
    wait_until,
    worker_process,
)


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], object]] = []
        self.status_for: dict[str, int] = {}


def serve(host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, Receiver]:
    received = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.requests.append(
                (self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(body))
            )
            self.send_response(received.status_for.get(self.path.split("?")[0], 200))
            self.end_headers()

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


@pytest.fixture
def receiver() -> Iterator[tuple[str, Receiver]]:
    server, received = serve()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def allow_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKQUEUE_WEBHOOK_ALLOW", "127.0.0.1")


@pytest.mark.usefixtures("allow_loopback")
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


@pytest.mark.usefixtures("allow_loopback")
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


async def test_internal_destinations_are_refused_by_default(
    tq: TaskQueue,
    pool: asyncpg.Pool,
    database_url: str,
    receiver: tuple[str, Receiver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TASKQUEUE_WEBHOOK_ALLOW", raising=False)
    base, received = receiver
    port = base.rsplit(":", 1)[1]
    hosts = [
        "127.0.0.1",
        "localhost",
        "2130706433",  # 127.0.0.1 in decimal
        "127.1",  # short form
        "0x7f.0.0.1",
        "[::1]",
        "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6
        "0.0.0.0",
        "169.254.169.254",  # cloud metadata (refused before any packet is sent)
        "10.1.2.3",
        "[fe80::1]",
    ]
    tasks = [
        await tq.enqueue("webhook", {"url": f"http://{host}:{port}/x"}, max_retries=0)
        for host in hosts
    ]
    ids = [t.id for t in tasks]
    async with running_worker(database_url):
        await wait_until(lambda: all_in_status(pool, ids, "failed"))
    assert received.requests == []
    for host, task in zip(hosts, tasks, strict=True):
        error = (await tq.get(task.id)).last_error or ""
        assert error.startswith("DestinationRefused: webhook destination refused"), (host, error)
        assert "TASKQUEUE_WEBHOOK_ALLOW" in error
    assert issubclass(handlers.DestinationRefused, Permanent)  # fails at once, no retries


async def test_the_address_checked_is_the_address_connected_to(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A name that resolves to an allowed address once and to a refused one
    # afterwards (DNS rebinding) gets one resolution per connection, and the
    # connection goes to exactly the address that was checked.
    allowed_server, allowed = serve("127.0.0.1")
    port = allowed_server.server_address[1]
    refused_server, refused = serve("127.0.0.2", port)
    calls: list[str] = []

    async def flipping(host: str, port: int, within: float | None) -> list[Address]:
        import ipaddress

        calls.append(host)
        answer = "127.0.0.1" if calls.count(host) == 1 else "127.0.0.2"
        if host == "both.test":
            return [ipaddress.ip_address("127.0.0.2"), ipaddress.ip_address("127.0.0.1")]
        return [ipaddress.ip_address(answer)]

    monkeypatch.setattr(outbound, "resolve", flipping)
    monkeypatch.setenv("TASKQUEUE_WEBHOOK_ALLOW", "127.0.0.1/32")
    try:
        first = await tq.enqueue("webhook", {"url": f"http://flip.test:{port}/a"}, max_retries=0)
        async with running_worker(database_url):
            await wait_until(lambda: all_in_status(pool, [first.id], "succeeded"))
            await outbound.close_http_client()  # the next task needs a new connection
            second = await tq.enqueue(
                "webhook", {"url": f"http://flip.test:{port}/b"}, max_retries=0
            )
            mixed = await tq.enqueue(
                "webhook", {"url": f"http://both.test:{port}/c"}, max_retries=0
            )
            await wait_until(lambda: all_in_status(pool, [second.id], "failed"))
            await wait_until(lambda: all_in_status(pool, [mixed.id], "succeeded"))
    finally:
        for server in (allowed_server, refused_server):
            server.shutdown()
            server.server_close()
    assert [path for path, _, _ in allowed.requests] == ["/a", "/c"]
    assert refused.requests == []
    assert allowed.requests[0][1]["host"] == f"flip.test:{port}"
    assert calls == ["flip.test", "flip.test", "both.test"]
    error = (await tq.get(second.id)).last_error or ""
    assert "127.0.0.2 is a loopback address" in error


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "internal.example"},
        {"Connection": "close"},
        {"Transfer-Encoding": "chunked"},
        {"Content-Length": "1"},
        {"X-Taskqueue-Task-Id": "forged"},
        {"Bad Name": "x"},
        {"X-Ok": "line\r\nInjected: 1"},
    ],
)
async def test_producers_cannot_set_host_hop_by_hop_or_broken_headers(
    tq: TaskQueue, database_url: str, headers: dict[str, str]
) -> None:
    payload = {"url": "https://hooks.example.com/in", "headers": headers}
    with pytest.raises(InvalidTask) as info:
        await tq.enqueue("webhook", payload)
    assert info.value.field == "payload"
    assert "headers" in info.value.message
    async with api_client(database_url) as client:
        response = await client.post("/api/tasks", json={"type": "webhook", "payload": payload})
    assert response.status_code == 422
    assert response.json()["field"] == "payload"


@pytest.mark.usefixtures("allow_loopback")
async def test_credentials_and_query_strings_never_reach_errors_events_or_logs(
    tq: TaskQueue,
    pool: asyncpg.Pool,
    database_url: str,
    receiver: tuple[str, Receiver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    base, received = receiver
    received.status_for["/down"] = 500
    port = base.rsplit(":", 1)[1]
    secret_down = f"http://user:pw-s3cret@127.0.0.1:{port}/down?token=tok-s3cret"
    closed = "http://user:pw-s3cret@127.0.0.1:1/in?token=tok-s3cret"  # nothing listens
    tasks = [
        await tq.enqueue("webhook", {"url": url}, max_retries=0) for url in (secret_down, closed)
    ]
    ids = [t.id for t in tasks]
    async with running_worker(database_url):
        await wait_until(lambda: all_in_status(pool, ids, "failed"))
    errors = [(await tq.get(i)).last_error or "" for i in ids]
    assert errors[0] == f"WebhookFailed: http://***@127.0.0.1:{port}/down?*** answered HTTP 500"
    assert errors[1].startswith("WebhookFailed: http://***@127.0.0.1:1/in?***: ConnectError")
    events = await pool.fetch("SELECT error, detail::text FROM taskqueue.task_events")
    trail = " ".join(f"{e['error']} {e['detail']}" for e in events)
    for text in (trail, caplog.text, *errors):
        assert "s3cret" not in text
    # httpx logs each request's URL: shown, but without its secrets
    assert f"HTTP Request: POST http://***@127.0.0.1:{port}/down?***" in caplog.text


# -- answers too big to read ----------------------------------------------------------

MIB = 1024 * 1024
HUGE_BYTES = 300 * MIB
BOMB_INFLATED_BYTES = 1024 * MIB


def gzip_bomb() -> bytes:
    """A gzip body of about 1 MB that inflates to 1 GiB of zeros."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MIB)
    parts = [packer.compress(zeros) for _ in range(BOMB_INFLATED_BYTES // MIB)]
    return b"".join(parts) + packer.flush()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return gzip_bomb()


@pytest.fixture
def flood(bomb: bytes) -> Iterator[str]:
    """/huge answers 300 MB (streamed, never held); /bomb the gzip bomb,
    Content-Encoding: gzip; /small a short body; /huge-error 500 + 300 MB."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            path = self.path
            try:
                if path in ("/huge", "/huge-error"):
                    self.send_response(200 if path == "/huge" else 500)
                    self.send_header("content-length", str(HUGE_BYTES))
                    self.end_headers()
                    chunk = b"x" * MIB
                    for _ in range(HUGE_BYTES // MIB):
                        self.wfile.write(chunk)
                elif path == "/bomb":
                    self.send_response(200)
                    self.send_header("content-encoding", "gzip")
                    self.send_header("content-length", str(len(bomb)))
                    self.end_headers()
                    self.wfile.write(bomb)
                else:
                    self.send_response(200)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the worker stopped reading: what it should do

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.usefixtures("allow_loopback")
async def test_answers_are_read_up_to_the_cap_raw_and_never_inflated(
    flood: str, bomb: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        huge = await outbound.post(
            f"{flood}/huge", content=b"{}", headers={}, timeout=10, max_bytes=1000
        )
        assert (huge.status_code, len(huge.body), huge.truncated) == (200, 1000, True)
        gzipped = await outbound.post(f"{flood}/bomb", content=b"{}", headers={}, timeout=10)
        # Read as sent: the compressed bytes, not what they inflate to.
        assert gzipped.body == bomb and not gzipped.truncated
        assert gzipped.content_encoding == "gzip"
        monkeypatch.setenv(outbound.MAX_RESPONSE_VARIABLE, "100")
        capped = await outbound.post(f"{flood}/bomb", content=b"{}", headers={}, timeout=10)
        assert (len(capped.body), capped.truncated) == (100, True)
    finally:
        await outbound.close_http_client()


def test_the_response_cap_is_a_setting() -> None:
    assert Settings().webhook_max_response_bytes == MIB
    assert Settings.from_env({"TASKQUEUE_WEBHOOK_MAX_RESPONSE_BYTES": "2048"}) == Settings(
        webhook_max_response_bytes=2048
    )
    with pytest.raises(ConfigError, match="TASKQUEUE_WEBHOOK_MAX_RESPONSE_BYTES"):
        Settings.from_env({"TASKQUEUE_WEBHOOK_MAX_RESPONSE_BYTES": "0"})


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set (VmHWM), as the kernel counts it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


async def test_a_worker_survives_a_300_mb_answer_and_a_gzip_bomb(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str, flood: str, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    async with worker_process(database_url, log, webhook_allow="127.0.0.1") as proc:
        warm = await tq.enqueue("webhook", {"url": f"{flood}/small"})
        await wait_until(lambda: all_in_status(pool, [warm.id], "succeeded"), timeout=30)
        before = peak_rss_bytes(proc.pid)
        huge = await tq.enqueue("webhook", {"url": f"{flood}/huge"})
        bomb = await tq.enqueue("webhook", {"url": f"{flood}/bomb"})
        failing = await tq.enqueue("webhook", {"url": f"{flood}/huge-error"}, max_retries=0)
        await wait_until(lambda: all_in_status(pool, [huge.id, bomb.id], "succeeded"), timeout=60)
        await wait_until(lambda: all_in_status(pool, [failing.id], "failed"), timeout=60)
        after = peak_rss_bytes(proc.pid)
    print(f"worker peak RSS: {before / MIB:.1f} MiB before, {after / MIB:.1f} MiB after")
    assert after - before < 100 * MIB, (before, after)
    assert (await tq.get(huge.id)).result == {
        "status_code": 200,
        "body_truncated": True,
        "body_bytes_read": MIB,
    }
    assert (await tq.get(bomb.id)).result == {"status_code": 200, "content_encoding": "gzip"}
    assert (await tq.get(failing.id)).last_error == (
        f"WebhookFailed: {flood}/huge-error answered HTTP 500 (body cut at {MIB} bytes)"
    )
