"""Helpers for API tests: an in-process client and a real server process."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from litestar.testing import AsyncTestClient

from taskqueue.app import create_app
from taskqueue.config import Settings

LOCAL_BASE_URL = "http://127.0.0.1:8000"


@asynccontextmanager
async def api_client(database_url: str, **settings: Any) -> AsyncIterator[AsyncTestClient[Any]]:
    app = create_app(Settings(database_url=database_url, **settings))
    # A loopback Host, as a browser on the same machine sends: without
    # tokens the app answers no other (taskqueue.http.hosts).
    async with AsyncTestClient(app, base_url=LOCAL_BASE_URL) as client:
        yield client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(url)).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer within {timeout}s")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def api_process(
    database_url: str, log: Path, *, port: int | None = None, **env: str
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """`taskqueue api` in a subprocess on ``port`` (default: a free one);
    yields its base URL. Its output is appended to ``log``."""
    port = port or free_port()
    variables = {**os.environ, "DATABASE_URL": database_url, "TASKQUEUE_PORT": str(port)}
    variables.update({f"TASKQUEUE_{k.upper()}": v for k, v in env.items()})
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "taskqueue.cli", "api", env=variables, stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_for_http(f"{base}/health")
        yield base, proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)
