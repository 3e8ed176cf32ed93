"""Logs: the JSON format line by line from a real API and a real worker,
task fields on every record logged inside a task, secrets never shown, the
access log, levels."""

from __future__ import annotations

import json
import logging
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from taskqueue.config import Settings
from taskqueue.models import ClaimedTask
from taskqueue.observability.logs import (
    ConsoleFormatter,
    JsonFormatter,
    Redactor,
    TaskContextFilter,
    configure,
    running_task,
    secrets_of,
)
from tests.api_helpers import api_client, api_process
from tests.helpers import all_in_status, wait_until, worker_process

READ_TOKEN = "read-token-0123456789abcdef"
WRITE_TOKEN = "write-token-0123456789abcdef"
DSN_PASSWORD = "dsn-Pa55word-never-logged"


def with_password(dsn: str, password: str) -> str:
    """The DSN with a password (the test server trusts local connections, so
    it is sent and ignored)."""
    parts = urlsplit(dsn)
    user = parts.username or "postgres"
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port}"))


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of ``path``, each of which must be one JSON object with
    the four fields every record has."""
    found = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"{path.name}:{number} is not JSON: {line!r}") from None
        assert isinstance(record, dict), line
        assert {"ts", "level", "logger", "msg"} <= set(record), line
        found.append(record)
    return found


async def test_json_logs_of_a_real_api_and_worker_parse_carry_task_fields_and_hide_secrets(
    database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    dsn = with_password(database_url, DSN_PASSWORD)
    api_log, worker_log = tmp_path / "api.log", tmp_path / "worker.log"
    env = {"log_format": "json", "handlers": "tests.observed_handlers"}
    tokens = f"{READ_TOKEN}:read,{WRITE_TOKEN}:read+write"
    api_env = {**env, "access_log": "true"}  # off by default
    async with (
        api_process(dsn, api_log, api_tokens=tokens, **api_env, port=None) as (base, _),
        httpx.AsyncClient(base_url=base) as http,
    ):
        write = {"Authorization": f"Bearer {WRITE_TOKEN}"}
        created = []
        for n, fail in ((1, False), (2, True)):
            body = {"type": "chatty", "payload": {"n": n, "fail": fail}, "max_retries": 0}
            answer = await http.post("/api/tasks", json=body, headers=write)
            assert answer.status_code == 201, answer.text
            created.append(uuid.UUID(answer.json()["id"]))
        # A secret in a query string, and a wrong token: neither may be logged.
        listed = await http.get(f"/api/tasks?token={READ_TOKEN}", headers=write)
        assert listed.status_code == 422
        refused = await http.get("/api/tasks", headers={"Authorization": "Bearer not-a-token"})
        assert refused.status_code == 401
        async with worker_process(dsn, worker_log, **env):
            await wait_until(lambda: all_in_status(pool, created[:1], "succeeded"))
            await wait_until(lambda: all_in_status(pool, created[1:], "failed"))

    api_records, worker_records = json_lines(api_log), json_lines(worker_log)
    for path in (api_log, worker_log):
        text = path.read_text()
        for secret in (DSN_PASSWORD, READ_TOKEN, WRITE_TOKEN):
            assert secret not in text, f"{secret} in {path.name}"

    access = [r for r in api_records if r["logger"] == "taskqueue.access"]
    assert [(r["method"], r["route"], r["status"]) for r in access if r["method"] == "POST"] == [
        ("POST", "/api/tasks", 201),
        ("POST", "/api/tasks", 201),
    ]
    assert all(r["level"] == "info" and r["duration_ms"] >= 0 for r in access)
    assert {r["path"] for r in access if r["status"] in (401, 422)} == {"/api/tasks"}
    assert all("?" not in r["msg"] for r in access)

    task_lines = [r for r in worker_records if "task_id" in r]
    by_logger = {r["logger"] for r in task_lines}
    assert {"taskqueue.task", "some.library", "taskqueue.executor"} <= by_logger
    for record in task_lines:
        assert record["task_id"] in {str(i) for i in created}
        assert record["type"] == "chatty"
        assert record["queue"] == "default"
        assert record["attempt"] == 1
        assert record["worker_id"]
    handled = [r for r in task_lines if r["logger"] == "taskqueue.task"]
    assert sorted(r["order"] for r in handled) == [1, 2]  # extra={...} fields come along
    quoted = [r for r in task_lines if r["logger"] == "some.library"]
    assert quoted and all("***" in r["msg"] for r in quoted)
    failed = [r for r in task_lines if r["logger"] == "taskqueue.executor"]
    assert [r["level"] for r in failed] == ["warning"]
    assert "RuntimeError: went wrong" in failed[0]["msg"]


def claimed(**overrides: Any) -> ClaimedTask:
    from datetime import UTC, datetime

    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "queue": "emails",
        "type": "send",
        "payload": "{}",
        "priority": 0,
        "attempt": 2,
        "max_retries": 3,
        "timeout_seconds": 30.0,
        "run_at": datetime.now(UTC),
    }
    return ClaimedTask(**{**fields, **overrides})


def format_json(record: logging.LogRecord, redact: Redactor | None = None) -> dict[str, Any]:
    TaskContextFilter().filter(record)
    line = JsonFormatter(redact).format(record)
    assert "\n" not in line
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def make_record(msg: str, *args: object, **extra: Any) -> logging.LogRecord:
    record = logging.getLogger("app").makeRecord("app", logging.INFO, "f.py", 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_a_json_line_has_its_fields_and_the_task_inside_which_it_was_logged() -> None:
    task = claimed()
    token = running_task.set((task, "host:1:ab"))
    try:
        inside = format_json(make_record("hello %s", "world", order=7))
    finally:
        running_task.reset(token)
    assert inside["msg"] == "hello world"
    assert inside["level"] == "info"
    assert inside["logger"] == "app"
    assert inside["ts"].endswith("Z")
    assert inside["order"] == 7
    assert (inside["task_id"], inside["type"], inside["queue"], inside["attempt"]) == (
        str(task.id),
        "send",
        "emails",
        2,
    )
    assert inside["worker_id"] == "host:1:ab"
    outside = format_json(make_record("no task"))
    assert "task_id" not in outside
    assert "type" not in outside


def test_a_json_line_keeps_a_traceback_on_one_line() -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        import sys

        record = logging.getLogger("app").makeRecord(
            "app", logging.ERROR, "f.py", 1, "failed", (), sys.exc_info()
        )
    line = format_json(record)
    assert "ValueError: bad" in line["exc"]
    assert line["level"] == "error"


def test_secrets_are_masked_however_they_are_quoted() -> None:
    settings = Settings(
        database_url="postgresql://app:p%40ss-word@db:5432/tq?sslpassword=other-secret",
        api_tokens=f"{READ_TOKEN}:read:bot,{WRITE_TOKEN}",
        jwt_secret="j" * 40,
    )
    redact = Redactor(secrets_of(settings))
    text = (
        f"dsn {settings.database_url} decoded p@ss-word token {READ_TOKEN} {WRITE_TOKEN} "
        f"jwt {'j' * 40} ssl other-secret; another https://user:hunter22@example.com/x"
    )
    masked = redact(text)
    for secret in ("p%40ss-word", "p@ss-word", READ_TOKEN, WRITE_TOKEN, "j" * 40, "hunter22"):
        assert secret not in masked
    assert "other-secret" not in masked
    assert "https://user:***@example.com/x" in masked
    # In JSON, a secret holding a quote is escaped: the escaped form is masked too.
    quoted = Redactor(['pa"ss'])
    line = format_json(make_record('value pa"ss here'), quoted)
    assert line["msg"] == "value *** here"
    console = ConsoleFormatter(Redactor([READ_TOKEN])).format(make_record(READ_TOKEN))
    assert READ_TOKEN not in console


def test_the_level_and_format_come_from_the_settings(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    chatty = {
        name: logging.getLogger(name).level for name in ("yoyo", "httpx", "httpcore", "asyncio")
    }
    try:
        configure(log_format="json", level="warning")
        logging.getLogger("taskqueue.x").info("hidden")
        logging.getLogger("taskqueue.x").warning("shown")
        lines = capsys.readouterr().err.splitlines()
        assert [json.loads(line)["msg"] for line in lines] == ["shown"]
    finally:
        logging.captureWarnings(False)
        root.handlers[:] = before[0]
        root.setLevel(before[1])
        for name, level in chatty.items():  # as other tests expect to find them
            logging.getLogger(name).setLevel(level)
    with pytest.raises(ValueError, match="TASKQUEUE_LOG_LEVEL"):
        Settings.from_env({"TASKQUEUE_LOG_LEVEL": "chatty"})


async def test_the_access_log_is_switchable_and_off_by_default(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskqueue.access")
    async with api_client(database_url, access_log=True) as client:
        assert (await client.get("/api/stats?secret=shh")).status_code == 422
    (line,) = [r for r in caplog.records if r.name == "taskqueue.access"]
    assert line.getMessage().startswith("GET /api/stats 422 ")  # no query string
    assert "shh" not in line.getMessage() and "shh" not in str(line.__dict__)
    caplog.clear()
    async with api_client(database_url) as client:  # the default
        assert (await client.get("/health")).status_code == 200
    assert not [r for r in caplog.records if r.name == "taskqueue.access"]


def test_messages_and_tracebacks_are_logged_with_control_characters_escaped() -> None:
    record = logging.makeLogRecord(
        {"msg": "task failed: %s", "args": ("bad\x1b[31m\nFAKE line",), "levelname": "INFO"}
    )
    console = ConsoleFormatter().format(record)
    assert console.endswith("task failed: bad\\x1b[31m\\nFAKE line") and "\n" not in console
    assert '"msg":"task failed: bad\\\\x1b[31m\\\\nFAKE line"' in JsonFormatter().format(record)
    try:
        raise ValueError("evil\x1b[2J")
    except ValueError:
        record.exc_info = sys.exc_info()
    with_trace = ConsoleFormatter().format(record)
    assert "ValueError: evil\\x1b[2J" in with_trace and "\x1b" not in with_trace
