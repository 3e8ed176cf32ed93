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

import httpx
import msgspec


class LoadResult(msgspec.Struct):
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]


async def run(url: str, body: bytes, connections: int, seconds: float, token: str) -> LoadResult:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        deadline = time.perf_counter() + seconds

        async def loop() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.post(url, content=body, headers=headers)
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code >= 300:
                    errors += 1

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
    result = asyncio.run(run(args.url, body, args.connections, args.seconds, args.token))
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")


if __name__ == "__main__":
    main()
