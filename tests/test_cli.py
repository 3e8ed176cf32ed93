"""`taskqueue` and `python -m taskqueue` (taskqueue/cli/__init__.py and
__main__.py), as real processes: handler modules from the current directory,
and the same command either way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.cli_helpers import run


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
