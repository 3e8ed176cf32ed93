"""The operator's commands (taskqueue/cli/operate.py), run as a user would:
queues, workers, failures, bulk, actions and tail."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import asyncpg
import jwt as pyjwt

from taskqueue.client import TaskQueue
from taskqueue.models import NewTask
from tests.api_helpers import api_client
from tests.helpers import wait_until
from tests.test_bulk import fail_tasks


def taskqueue(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskqueue.cli", "--database-url", database_url, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_queues_are_listed_paused_resumed_and_limited_from_the_shell(
    database_url: str, tq: TaskQueue
) -> None:
    await tq.enqueue_many([NewTask(type="noop", queue="mail") for _ in range(2)])
    paused = taskqueue(database_url, "queues", "pause", "mail")
    assert paused.returncode == 0, paused.stderr
    assert "mail" in paused.stdout and "paused" in paused.stdout
    limited = taskqueue(
        database_url, "queues", "limit", "mail", "--concurrency", "5", "--rate", "100/60"
    )
    assert limited.returncode == 0, limited.stderr
    listed = json.loads(taskqueue(database_url, "queues", "--json").stdout)
    (mail,) = [q for q in listed if q["name"] == "mail"]
    assert (mail["paused"], mail["due"], mail["concurrency_limit"], mail["rate_limit"]) == (
        True,
        2,
        5,
        {"limit": 100, "period_seconds": 60.0},
    )
    table = taskqueue(database_url, "queues").stdout.splitlines()
    assert table[0].split()[:3] == ["queue", "state", "due"]
    assert any(line.split()[:3] == ["mail", "paused", "2"] for line in table[1:])
    bad = taskqueue(database_url, "queues", "limit", "mail", "--rate", "lots")
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("taskqueue: error: --rate")
    unlimited = taskqueue(
        database_url, "queues", "limit", "mail", "--concurrency", "none", "--rate", "none"
    )
    assert unlimited.returncode == 0, unlimited.stderr
    assert taskqueue(database_url, "queues", "resume", "mail").returncode == 0
    log = taskqueue(database_url, "actions", "--json")
    assert [(a["action"], a["actor"]) for a in json.loads(log.stdout)] == [
        ("resume", "local"),
        ("limit", "local"),
        ("limit", "local"),
        ("pause", "local"),
    ]
    assert "no workers" in taskqueue(database_url, "workers").stdout


async def test_failures_are_grouped_and_retried_in_bulk_from_the_shell(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await fail_tasks(pool, [f"Gone: order {n}" for n in range(3)])
    groups = taskqueue(database_url, "failures")
    assert groups.returncode == 0, groups.stderr
    assert "Gone: order <n>" in groups.stdout
    retried = taskqueue(
        database_url, "bulk", "retry", "--status", "failed", "--error", "Gone: order <n>"
    )
    assert (retried.returncode, retried.stdout.strip()) == (0, "retry: 3 matched, 3 changed")
    assert "no failed tasks" in taskqueue(database_url, "failures").stdout
    neither = taskqueue(database_url, "bulk", "cancel")
    assert neither.returncode == 2
    assert "give --id" in neither.stderr


async def test_tail_follows_events_as_they_happen(database_url: str, tq: TaskQueue) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskqueue.cli",
        "--database-url",
        database_url,
        "tail",
        "--queue",
        "mail",
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[dict[str, object]] = []

    async def read() -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            lines.append(json.loads(line))

    reading = asyncio.create_task(read())
    try:
        # Until the tail is following, events from before it started are not shown.
        async def followed() -> bool:
            await tq.enqueue("noop", queue="mail")  # a probe, until one shows
            return bool(lines)

        await wait_until(followed, timeout=30, interval=0.2)
        other = await tq.enqueue("noop", queue="elsewhere")
        task = await tq.enqueue("noop", queue="mail")
        await wait_until(lambda: _has(lines, str(task.id)))
        assert all(line["queue"] == "mail" for line in lines)
        assert str(other.id) not in {str(line["task_id"]) for line in lines}
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 10)
        reading.cancel()
    assert proc.returncode == 0


async def _has(lines: list[dict[str, object]], task_id: str) -> bool:
    return any(str(line["task_id"]) == task_id for line in lines)


async def test_partitions_lists_the_days_and_the_default_partitions_rows(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await pool.execute(
        "INSERT INTO taskqueue.task_events (task_id, at, event_type, status, attempt)"
        " VALUES (gen_random_uuid(), now() + interval '3 years', 'task_queued', 'queued', 0)"
    )
    shown = taskqueue(database_url, "partitions")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["partition", "from", "(UTC)", "until", "(UTC)", "rows"]
    assert lines[1].split()[:3] == ["task_events_default", "default", "1"]
    today = await pool.fetchval("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')")
    assert any(line.startswith(f"task_events_{today} ") for line in lines)
    listed = json.loads(taskqueue(database_url, "partitions", "--json").stdout)
    assert listed[0] == {
        "name": "task_events_default",
        "starts": None,
        "ends": None,
        "rows": 1,
        "default": True,
    }


async def test_actions_and_failures_print_control_characters_escaped(
    database_url: str, tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    secret = "jwt-secret-for-tests-0123456789abcdef"
    subject = "eve\n2026-01-01 INFO forged\x1b[2J\u202e"
    token = pyjwt.encode({"sub": subject, "scope": "read write", "exp": 2**31}, secret)
    async with api_client(database_url, jwt_secret=secret) as client:
        paused = await client.post(
            "/api/queues/mail/pause", headers={"Authorization": f"Bearer {token}"}
        )
        assert paused.status_code == 200, paused.text
    await fail_tasks(pool, ["boom \x1b[31mred\x1b[0m\nsecond line"])
    actions = taskqueue(database_url, "actions")
    failures = taskqueue(database_url, "failures")
    for shown in (actions, failures):
        assert shown.returncode == 0, shown.stderr
        assert "\x1b" not in shown.stdout and "\u202e" not in shown.stdout
    assert "jwt:eve\\n2026-01-01 INFO forged\\x1b[2J\\u202e" in actions.stdout
    assert len(actions.stdout.splitlines()) == 2  # the header and one action
    assert "boom \\x1b[<n>mred" in failures.stdout  # numbers are masked in groups
