"""HTTP load for the REST phases when wrk is not installed: N keep-alive
connections POSTing one body for a fixed time. Run as its own process
(``python -m taskqueue.benchmark.http_load``) so it does not share a core's
event loop with what it measures; prints one JSON line of results."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
import uvloop


class LoadResult(msgspec.Struct):
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]


def build_request(url: str, body: bytes, token: str) -> bytes:
    """One keep-alive HTTP/1.1 POST, encoded once and sent as is every time."""
    parts = urlsplit(url)
    lines = [
        f"POST {parts.path or '/'} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response; returns its status code. A plain reader rather than
    an HTTP client library: those cost more CPU per request than the server
    under test, and this process shares the machine with it."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            raise ValueError("chunked responses are not supported by this load generator")
    if length:
        await reader.readexactly(length)
    return status


async def run(url: str, body: bytes, connections: int, seconds: float, token: str) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = build_request(url, body, token)
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(request)
                status = await read_response(reader)
                latencies.append((time.perf_counter() - started) * 1000)
                if status >= 300:
                    errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    return LoadResult(
        requests=len(latencies), errors=errors, seconds=elapsed, latencies_ms=latencies
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--token", default="")
    args = parser.parse_args()
    body = Path(args.body_file).read_bytes()
    result = uvloop.run(run(args.url, body, args.connections, args.seconds, args.token))
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")


if __name__ == "__main__":
    main()
