"""The package as users get it: a wheel built from this checkout, installed
(not editable) into a fresh virtualenv, runs `taskqueue migrate`, a worker
and one task end to end, from a directory that is not the checkout."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import asyncpg

from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parent.parent
NOT_SHIPPED = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".taskqueue",
    "tests",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    ".schemathesis",
)


def check(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-3000:])
    return result.stdout


async def test_the_wheel_migrates_runs_a_worker_and_a_task(
    empty_database_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SHIPPED)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip"]
    await asyncio.to_thread(
        check,
        [*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(dist), "."],
        source,
        env,
    )
    (wheel,) = dist.glob("taskqueue-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    assert "taskqueue/migrations/0001_initial.sql" in shipped
    assert "taskqueue/api/static/redoc.standalone.js" in shipped
    assert {"taskqueue/web/templates/base.html", "taskqueue/web/static/dashboard.js"} <= shipped

    venv = tmp_path / "fresh"
    await asyncio.to_thread(
        check, [sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env
    )
    python = venv / "bin" / "python"
    await asyncio.to_thread(
        check,
        [
            *pip,
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        tmp_path,
        env,
    )
    # The dependencies come from this environment's site-packages, added as a
    # plain path (its .pth files, the editable install's among them, stay inert).
    site = Path(
        check(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            tmp_path,
            env,
        ).strip()
    )
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")

    where = check([str(python), "-c", "import taskqueue; print(taskqueue.__file__)"], tmp_path, env)
    assert where.startswith(str(venv)), where

    taskqueue = str(venv / "bin" / "taskqueue")
    env["DATABASE_URL"] = empty_database_url
    migrated = await asyncio.to_thread(check, [taskqueue, "migrate"], tmp_path, env)
    assert "applied: 0001_initial" in migrated
    enqueued = await asyncio.to_thread(
        check,
        [str(python), "-m", "taskqueue", "enqueue", "noop", '{"from": "the wheel"}'],
        tmp_path,
        env,
    )
    assert '"status":"queued"' in enqueued

    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [taskqueue, "worker"], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    conn = await asyncpg.connect(empty_database_url)
    try:

        async def done() -> bool:
            status = await conn.fetchval("SELECT status::text FROM taskqueue.tasks")
            return bool(status == "succeeded")

        await wait_until(done, timeout=60)
        events = await conn.fetch("SELECT event_type FROM taskqueue.task_events ORDER BY id")
    finally:
        await conn.close()
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 60)
    assert [e["event_type"] for e in events] == ["task_queued", "task_started", "task_succeeded"]
    assert code == 0, log.read_text()[-2000:]
