"""The API and `make run` as real processes: database outages, fuzzing from
the OpenAPI document, and the newcomer's flow from start to Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psutil
import pytest

from taskqueue import db
from taskqueue.embedded import EmbeddedPostgres
from tests.api_helpers import api_client, api_process, free_port, wait_for_http

ROOT = Path(__file__).resolve().parent.parent


async def test_database_down_gives_503_and_never_a_false_201(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pgdata", settings={"fsync": "off"})
    dsn = server.start()
    try:
        db.migrate(dsn)
        async with api_client(dsn) as client:
            assert (await client.post("/api/tasks", json={"type": "noop"})).status_code == 201
            server.stop(mode="immediate")
            server.wait_stopped()

            down = await client.post("/api/tasks", json={"type": "noop", "name": "lost?"})
            assert down.status_code == 503
            assert down.json()["error"] == "database_unavailable"
            assert "Traceback" not in down.text
            assert (await client.get("/api/tasks")).status_code == 503
            assert (await client.get("/api/stats")).status_code == 503
            not_ready = await client.get("/ready")
            assert (not_ready.status_code, not_ready.json()["database"]) == (503, "unreachable")
            assert (await client.get("/health")).status_code == 200

            server.start()
            back = await client.post("/api/tasks", json={"type": "noop", "name": "after"})
            assert back.status_code == 201
            names = {t["name"] for t in (await client.get("/api/tasks")).json()["tasks"]}
            assert names == {"", "after"}  # the 503 request left no row
    finally:
        server.destroy()


@pytest.mark.parametrize(
    "strategies",
    [
        [],
        # NUL in every string, and any code point a JSON or URL escape can
        # carry, lone surrogates included (the unicode_escape codec encodes all).
        ["--generation-allow-x00", "true", "--generation-codec", "unicode_escape"],
    ],
    ids=["default", "nul-and-surrogates"],
)
async def test_fuzzing_every_operation_from_the_openapi_document_finds_no_server_error(
    database_url: str, tmp_path: Path, strategies: list[str]
) -> None:
    async with api_process(database_url, tmp_path / "api.log") as (base, _):
        result = await asyncio.to_thread(
            subprocess.run,
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "run",
                f"{base}/schema/openapi.json",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "15",
                "--seed",
                "1",
                "--no-color",
                # The live event stream never ends by itself; its inputs are
                # checked in test_api_events.
                "--exclude-path",
                "/api/events",
                *strategies,
            ],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
            cwd=tmp_path,  # its example database lands here, not in the checkout
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "No issues found" in output or "passed" in output, output[-2000:]


async def test_make_run_serves_runs_tasks_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "TASKQUEUE_PORT": str(port),
        "TASKQUEUE_DATA_DIR": str(tmp_path / "state"),
        "TASKQUEUE_POLL_INTERVAL": "0.2",
    }
    env.pop("DATABASE_URL", None)
    env.pop("TASKQUEUE_DATABASE_URL", None)
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, like a terminal's
        )
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_for_http(f"{base}/ready", timeout=120)
        async with httpx.AsyncClient(base_url=base) as client:
            created = await client.post(
                "/api/tasks", json={"type": "noop", "name": "hello", "payload": {"hello": "world"}}
            )
            assert created.status_code == 201
            task_id = uuid.UUID(created.json()["id"])
            failing = await client.post("/api/tasks", json={"type": "fail", "max_retries": 2})
            failing_id = failing.json()["id"]
            deadline = time.monotonic() + 60
            while True:
                task = (await client.get(f"/api/tasks/{task_id}")).json()
                fail_task = (await client.get(f"/api/tasks/{failing_id}")).json()
                if task["status"] == "succeeded" and fail_task["status"] == "failed":
                    break
                assert time.monotonic() < deadline, (task, fail_task)
                await asyncio.sleep(0.1)
            history = (await client.get(f"/api/tasks/{task_id}/history")).json()
            assert [e["event_type"] for e in history] == [
                "task_queued",
                "task_started",
                "task_succeeded",
            ]
            fail_history = (await client.get(f"/api/tasks/{failing_id}/history")).json()
            assert [e["event_type"] for e in fail_history].count("task_started") == 3
            assert [e["event_type"] for e in fail_history].count("task_retry_scheduled") == 2
        assert "taskqueue is running" in log.read_text()
        postgres = _postgres_of(tmp_path / "state")
        assert postgres, "the embedded PostgreSQL runs while make run does"
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal
        await asyncio.to_thread(proc.wait, 60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    output = log.read_text()
    assert "stopped PostgreSQL" in output, output[-3000:]
    assert _postgres_of(tmp_path / "state") == []
    assert not _group_alive(proc.pid)


def _postgres_of(state_dir: Path) -> list[int]:
    found = []
    for p in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(p.info["cmdline"] or [])
        if p.info["name"] == "postgres" and str(state_dir) in cmdline:
            found.append(p.pid)
    return found


def _group_alive(pgid: int) -> bool:
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid:
                return True
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return False
