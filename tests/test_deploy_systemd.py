"""deploy/systemd: the worker unit runs a real `taskqueue worker`, restarts on
failure, and gives a stopping worker longer than its shutdown timeout."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path
from urllib.parse import urlsplit

from taskqueue.config import Settings
from taskqueue.worker.process import INTERRUPT_GRACE_SECONDS
from tests.test_deploy_compose import subcommand

SYSTEMD = Path(__file__).resolve().parent.parent / "deploy" / "systemd"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((SYSTEMD / "taskqueue-worker.service").read_text())
    return parser


def example_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in (SYSTEMD / "worker.env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


def seconds(value: str) -> float:
    return float(value.removesuffix("s"))


def test_the_unit_runs_a_taskqueue_worker_from_the_checkout_virtualenv() -> None:
    service = unit()["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/.venv/bin/taskqueue")
    assert subcommand(argv[1:]) == "worker"
    assert service["User"] not in ("root", "0")
    assert service["EnvironmentFile"] == "/etc/taskqueue/worker.env"
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_the_unit_restarts_on_failure_and_stops_gracefully() -> None:
    service = unit()["Service"]
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert service["KillMode"] == "mixed"  # SIGTERM to the worker, SIGKILL only at the end
    settings = Settings.from_env(example_env())
    stop = seconds(service["TimeoutStopSec"])
    assert stop >= settings.shutdown_timeout + INTERRUPT_GRACE_SECONDS + 10


def test_the_environment_file_example_sets_only_what_the_code_reads() -> None:
    env = example_env()
    names = {f"TASKQUEUE_{f.upper()}" for f in Settings.__struct_fields__} | {"DATABASE_URL"}
    assert set(env) <= names
    url = urlsplit(Settings.from_env(env).database_url)
    assert url.username == "taskqueue_worker"
    assert url.password == "CHANGE-ME"
    assert "sslmode=verify-full" in url.query
