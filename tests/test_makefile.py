"""The Makefile as people use it: the variables its help names are the ones
it passes on, and targets install only what they need."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from pathlib import Path

import asyncpg

from taskqueue.client import TaskQueue
from taskqueue.models import NewTask
from tests.helpers import all_in_status, wait_until

ROOT = Path(__file__).resolve().parent.parent


def test_help_names_only_variables_the_makefile_passes_on() -> None:
    makefile = (ROOT / "Makefile").read_text()
    shown = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    named = set(re.findall(r"\b([A-Z][A-Z_]+)=", shown))
    assert {"QUEUES", "CONCURRENCY", "HANDLERS"} <= named
    for variable in named - {"BENCH_ARGS"}:
        assert f"$({variable})" in makefile, variable


def test_running_installs_the_runtime_and_testing_the_dev_tools() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "run-worker", "run-api", "migrate", "psql"):
        assert re.search(rf"^{target}: \$\(RUN_STAMP\)", makefile, re.MULTILINE), target
    for target in ("test", "lint", "fmt", "bench"):
        assert re.search(rf"^{target}: \$\(DEV_STAMP\)", makefile, re.MULTILINE), target
    assert "-e '.[embedded]'" in makefile and "-e '.[dev]'" in makefile


async def test_run_worker_takes_queues_concurrency_and_handlers(
    database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    record = tmp_path / "most-at-once"
    log = tmp_path / "worker.log"
    env = {**os.environ, "DATABASE_URL": database_url, "TASKQUEUE_POLL_INTERVAL": "0.1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                "make",
                "--no-print-directory",
                "run-worker",
                "QUEUES=probes,other",
                "CONCURRENCY=2",
                "HANDLERS=tests.handlers_for_make",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        tq = TaskQueue(pool, registry=None)
        tasks = await tq.enqueue_many(
            [
                NewTask(
                    type="overlap_probe",
                    queue="probes",
                    payload={"record": str(record), "seconds": 0.4},
                )
                for _ in range(5)
            ]
        )
        ids = [t.id for t in tasks]
        await wait_until(lambda: all_in_status(pool, ids, "succeeded"), timeout=60)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 60)
    assert record.read_text() == "2", log.read_text()[-2000:]
