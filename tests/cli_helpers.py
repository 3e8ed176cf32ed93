"""Running `taskqueue` as a user would, for the CLI's tests: the console
script as a process, `taskqueue run` in its own process group, and a data
directory whose embedded server is stopped after the test."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from taskqueue.embedded import EmbeddedPostgres
from tests.api_helpers import free_port, wait_for_http

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


@contextmanager
def data_dir(tmp_path: Path) -> Iterator[Path]:
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
