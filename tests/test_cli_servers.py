"""`taskqueue run` (taskqueue/cli/servers.py), as real processes: no password
in the banner, one run per data directory and port, a server it did not
start left running, and one Ctrl-C that lets running tasks finish."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from taskqueue.embedded import EmbeddedPostgres
from tests.api_helpers import free_port
from tests.cli_helpers import Run, data_dir, run


def with_password(dsn: str, password: str) -> str:
    parts = urlsplit(dsn)
    user = parts.username or "postgres"
    netloc = f"{user}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    with data_dir(tmp_path) as folder:
        yield folder


async def test_the_banner_masks_the_database_password(database_url: str, tmp_path: Path) -> None:
    # The test server trusts local connections, so any password is accepted.
    dsn = with_password(database_url, "pw-s3cret")
    first = Run(tmp_path / "run.log", DATABASE_URL=dsn)
    try:
        await first.ready()
    finally:
        output = await first.stop()
    assert "postgresql://postgres:***@" in output, output
    assert "s3cret" not in output


async def test_a_second_run_refuses_and_leaves_the_first_serving(
    state: Path, tmp_path: Path
) -> None:
    first = Run(tmp_path / "first.log", TASKQUEUE_DATA_DIR=str(state))
    try:
        await first.ready()
        same_data = run(
            "run", env={"TASKQUEUE_DATA_DIR": str(state), "TASKQUEUE_PORT": str(free_port())}
        )
        assert same_data.returncode == 2
        assert "in use by taskqueue run (pid" in same_data.stderr, same_data.stderr
        same_port = run(
            "run",
            env={"TASKQUEUE_DATA_DIR": str(tmp_path / "other"), "TASKQUEUE_PORT": str(first.port)},
        )
        assert same_port.returncode == 2
        assert "is in use" in same_port.stderr and "TASKQUEUE_PORT" in same_port.stderr
        assert not (tmp_path / "other" / "pgdata").exists()  # refused before starting anything
        async with httpx.AsyncClient(base_url=first.base) as client:
            assert (await client.get("/ready")).status_code == 200
            created = await client.post("/api/tasks", json={"type": "noop"})
            assert created.status_code == 201
    finally:
        output = await first.stop()
    assert "stopped PostgreSQL" in output, output  # whole, should it fail again
    assert EmbeddedPostgres(state / "pgdata").running_port() is None


async def test_run_and_psql_never_stop_a_server_they_did_not_start(
    state: Path, tmp_path: Path
) -> None:
    env = {"TASKQUEUE_DATA_DIR": str(state)}
    started = run("embedded", "start", env=env)  # what make migrate / run-worker do
    assert started.returncode == 0, started.stderr
    server = EmbeddedPostgres(state / "pgdata")
    assert server.running_port() is not None
    psql = run("psql", "-A", "-t", "-c", "SELECT 40 + 2", env=env)
    assert (psql.returncode, psql.stdout.strip()) == (0, "42"), psql.stderr
    assert server.running_port() is not None
    adopter = Run(tmp_path / "run.log", **env)
    try:
        await adopter.ready()
    finally:
        output = await adopter.stop()
    assert "already running" in output and "stopped PostgreSQL" not in output
    assert server.running_port() is not None
    assert run("embedded", "stop", env=env).returncode == 0


async def test_one_ctrl_c_on_run_lets_running_tasks_finish(
    database_url: str, tmp_path: Path, pool: asyncpg.Pool
) -> None:
    first = Run(tmp_path / "run.log", DATABASE_URL=database_url, TASKQUEUE_SHUTDOWN_TIMEOUT="30")
    try:
        await first.ready()
        async with httpx.AsyncClient(base_url=first.base) as client:
            created = await client.post(
                "/api/tasks", json={"type": "sleep", "payload": {"seconds": 1.5}}
            )
        task_id = created.json()["id"]

        async def running() -> bool:
            status = await pool.fetchval(
                "SELECT status::text FROM taskqueue.tasks WHERE id = $1::uuid", task_id
            )
            return bool(status == "running")

        deadline = time.monotonic() + 30
        while not await running():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    finally:
        output = await first.stop()  # one SIGINT to the process group
    assert first.proc.returncode == 0, output
    assert "waiting up to 30s for 1 running task(s)" in output
    assert "interrupting" not in output and "never awaited" not in output, output
    trail = await pool.fetch(
        "SELECT event_type FROM taskqueue.task_events WHERE task_id = $1::uuid ORDER BY id",
        task_id,
    )
    assert [r["event_type"] for r in trail][-1] == "task_succeeded"
