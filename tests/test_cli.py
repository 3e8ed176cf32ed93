"""`taskqueue` on the command line, as real processes: clear one-line errors,
confirmation before destroying data, handler modules from the current
directory, no password in the banner, and a `make run` or `make psql` that
never breaks a server it did not start."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from taskqueue.embedded import EmbeddedPostgres
from tests.api_helpers import free_port, wait_for_http
from tests.test_migrations import TABLES

TASKQUEUE = str(Path(sys.executable).parent / "taskqueue")


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TASKQUEUE, *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def with_password(dsn: str, password: str) -> str:
    parts = urlsplit(dsn)
    user = parts.username or "postgres"
    netloc = f"{user}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def count_tables(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'taskqueue'"
            )
        )
    finally:
        await conn.close()


async def test_rolling_back_asks_for_yes(database_url: str) -> None:
    refused = run("--database-url", database_url, "migrate", "--rollback", "0")
    assert refused.returncode == 2
    assert "add --yes" in refused.stderr and "drop" in refused.stderr
    assert await count_tables(database_url) == len(TABLES)
    done = run("--database-url", database_url, "migrate", "--rollback", "0", "--yes")
    assert done.returncode == 0, done.stderr
    assert await count_tables(database_url) == 0


def test_errors_are_one_line_and_the_traceback_needs_v(tmp_path: Path) -> None:
    nowhere = f"postgresql://app:pw-s3cret@127.0.0.1:{free_port()}/none"
    cases = [
        (["--database-url", nowhere, "stats"], {}, "ConnectionRefusedError"),
        (["--database-url", nowhere, "migrate"], {}, "connection"),
        (
            ["--database-url", nowhere, "worker", "--handlers", "no_such_module"],
            {},
            "no_such_module",
        ),
        (["worker"], {"TASKQUEUE_CONCURRENCY": "abc"}, "TASKQUEUE_CONCURRENCY: expected int"),
    ]
    for args, env, expected in cases:
        result = run(*args, env=env, cwd=tmp_path)
        assert result.returncode in (1, 2), result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("taskqueue: error: ") and expected in lines[0], lines
        assert "s3cret" not in result.stderr
    verbose = run("-v", "--database-url", nowhere, "stats", cwd=tmp_path)
    assert "Traceback" in verbose.stderr
    assert "s3cret" not in verbose.stderr.splitlines()[-1]


async def test_handler_modules_are_found_in_the_current_directory(
    database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "shop_tasks.py").write_text(
        "from taskqueue import Registry\n"
        "registry = Registry()\n"
        "@registry.task('ship_order')\n"
        "async def ship_order(payload, ctx):\n"
        "    return None\n"
    )
    result = run(
        "--database-url",
        database_url,
        "enqueue",
        "ship_order",
        "{}",
        "--handlers",
        "shop_tasks",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert '"type":"ship_order"' in result.stdout


def test_python_dash_m_taskqueue_is_the_same_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "taskqueue", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "migrate" in result.stdout and "worker" in result.stdout


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """A data directory for `taskqueue run`/`psql`; its server is stopped after."""
    folder = tmp_path / "state"
    yield folder
    if (folder / "pgdata").exists():
        EmbeddedPostgres(folder / "pgdata").destroy()


class Run:
    """`taskqueue run` in its own process group, like a terminal's."""

    def __init__(self, log: Path, **env: str) -> None:
        self.port = int(env.get("TASKQUEUE_PORT") or free_port())
        self.log = log
        variables = {**os.environ, "TASKQUEUE_PORT": str(self.port), **env}
        if "DATABASE_URL" not in env:
            variables.pop("DATABASE_URL", None)
            variables.pop("TASKQUEUE_DATABASE_URL", None)
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [TASKQUEUE, "run"],
                env=variables,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.base = f"http://127.0.0.1:{self.port}"

    async def ready(self) -> None:
        await wait_for_http(f"{self.base}/ready", timeout=120)
        deadline = time.monotonic() + 30
        while "taskqueue is running" not in self.log.read_text():
            assert time.monotonic() < deadline, self.log.read_text()
            await asyncio.sleep(0.05)

    async def stop(self) -> str:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            await asyncio.to_thread(self.proc.wait, 60)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
        return self.log.read_text()


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
    assert "stopped PostgreSQL" in output
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


def test_psql_stops_the_server_it_started(state: Path) -> None:
    env = {"TASKQUEUE_DATA_DIR": str(state)}
    result = run("psql", "-A", "-t", "-c", "SELECT 'hello'", env=env)
    assert (result.returncode, result.stdout.strip()) == (0, "hello"), result.stderr
    assert EmbeddedPostgres(state / "pgdata").running_port() is None


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


async def test_commands_find_the_running_embedded_server_without_database_url(
    state: Path,
) -> None:
    env = {"TASKQUEUE_DATA_DIR": str(state), "DATABASE_URL": "", "TASKQUEUE_DATABASE_URL": ""}
    without = run("queues", env=env)
    assert without.returncode == 2  # nothing running: the usual clear error
    assert "DATABASE_URL" in without.stderr
    assert not (state / "pgdata").exists()  # and nothing was started
    assert run("embedded", "start", env=env).returncode == 0
    try:
        assert run("migrate", env=env).returncode == 0
        listed = run("queues", env=env)
        assert (listed.returncode, listed.stdout.strip()) == (0, "no queues"), listed.stderr
    finally:
        assert run("embedded", "stop", env=env).returncode == 0
