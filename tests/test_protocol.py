"""The request head is capped (431) below Litestar, in a real `taskqueue api`
process: one connection sending a huge header cannot stall the others."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import httpx

from taskqueue.http.protocol import MAX_HEAD_BYTES
from tests.api_helpers import api_process


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def _exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


async def test_a_50_mb_header_is_cut_off_while_health_answers_fast(
    database_url: str, tmp_path: Path
) -> None:
    async with api_process(database_url, tmp_path / "api.log") as (base, _):
        port = _port(base)
        flood: dict[str, object] = {}

        def send_huge_header() -> None:
            total = 50 * 1024 * 1024
            chunk = b"a" * 65536
            sent = 0
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                try:
                    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
                    while sent < total:
                        sock.sendall(chunk)
                        sent += len(chunk)
                except OSError as exc:  # the server closed the connection on us
                    flood["error"] = exc
            flood["sent"] = sent

        latencies: list[float] = []
        async with httpx.AsyncClient(base_url=base) as client:
            await client.get("/health")  # connection made before timing
            sender = threading.Thread(target=send_huge_header)
            sender.start()
            deadline = time.monotonic() + 60
            while sender.is_alive() or len(latencies) < 30:
                started = time.monotonic()
                response = await client.get("/health")
                latencies.append(time.monotonic() - started)
                assert response.status_code == 200
                assert time.monotonic() < deadline
                await asyncio.sleep(0.005)
            await asyncio.to_thread(sender.join, 30)
    assert "error" in flood, "the server read all 50 MB of header"
    assert int(flood["sent"]) < 8 * 1024 * 1024  # type: ignore[call-overload]
    assert max(latencies) < 0.1, sorted(latencies)[-5:]
    assert "refused a request head over" in (tmp_path / "api.log").read_text()


async def test_heads_over_the_cap_get_431_and_those_under_it_pass(
    database_url: str, tmp_path: Path
) -> None:
    async with api_process(database_url, tmp_path / "api.log") as (base, _):
        port = _port(base)
        big = b"x" * (MAX_HEAD_BYTES + 1000)
        over = await asyncio.to_thread(
            _exchange, port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + big + b"\r\n\r\n"
        )
        assert over.startswith(b"HTTP/1.1 431 "), over[:200]
        assert b"request_header_fields_too_large" in over

        under = b"y" * (MAX_HEAD_BYTES - 2000)
        fine = await asyncio.to_thread(
            _exchange, port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + under + b"\r\n\r\n"
        )
        assert fine.startswith(b"HTTP/1.1 200 "), fine[:200]

        # Heads are counted per request: several near the cap on one
        # keep-alive connection, and a body far bigger than the cap.
        async with httpx.AsyncClient(base_url=base) as client:
            for _ in range(4):
                response = await client.get("/health", headers={"X-Pad": "z" * 40_000})
                assert response.status_code == 200
            created = await client.post(
                "/api/tasks", json={"type": "noop", "payload": {"blob": "b" * 200_000}}
            )
            assert created.status_code == 201, created.text


def _reply_when_closed(port: int, request: bytes) -> tuple[bytes, float]:
    """What the server answers to ``request`` (maybe half a request) before
    it closes the connection, and after how many seconds."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply, time.monotonic() - started


async def test_half_sent_heads_and_bodies_are_answered_408_and_closed(
    database_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "api.log"
    async with api_process(
        database_url, log, request_head_timeout="0.5", request_body_timeout="1"
    ) as (base, _):
        port = _port(base)
        head = b"POST /api/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        cases = {
            "nothing": b"",
            "half a head": head,
            "half a body": head
            + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            + b'{"type": "no',
        }
        replies = await asyncio.gather(
            *(asyncio.to_thread(_reply_when_closed, port, request) for request in cases.values())
        )
        for (name, _), (reply, seconds) in zip(cases.items(), replies, strict=True):
            assert reply.startswith(b"HTTP/1.1 408 Request Timeout"), (name, reply)
            limit = 1 if name == "half a body" else 0.5
            assert limit <= seconds < limit + 5, (name, seconds)
        assert b"request body did not arrive within 1 s" in replies[2][0]
        # A whole request, even in pieces, is served as ever.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\n")
            sock.sendall(b"Host: 127.0.0.1\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.post("/api/tasks", json={"type": "noop"})).status_code == 201
    assert "its request head took over 0.5s" in (tmp_path / "api.log").read_text()
