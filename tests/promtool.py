"""promtool (Debian's `prometheus` package ships it): the tests that need it
skip with a clear reason on a machine without it, and fail in CI, where
.ci/run installs it and sets TASKQUEUE_REQUIRE_PROMTOOL."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def promtool() -> str:
    found = shutil.which("promtool")
    if found is not None:
        return found
    if os.environ.get("TASKQUEUE_REQUIRE_PROMTOOL"):
        pytest.fail("promtool is required here (TASKQUEUE_REQUIRE_PROMTOOL) but not on PATH")
    pytest.skip("promtool is not installed (Debian/Ubuntu: apt-get install prometheus)")


def run_promtool(*args: str, stdin: str | None = None, cwd: Path | None = None) -> str:
    """Run ``promtool args``; fail the test with its output unless it succeeds."""
    done = subprocess.run(
        [promtool(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output
