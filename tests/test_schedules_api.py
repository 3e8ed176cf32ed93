"""/api/schedules in-process against real PostgreSQL, and `taskqueue schedules`."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from taskqueue.client import TaskQueue
from tests.api_helpers import api_client

WRITER = "writer-token-0123456789"
READER = "reader-token-0123456789"
ROOT = Path(__file__).resolve().parent.parent


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_define_inspect_change_pause_trigger_and_delete_a_schedule(
    database_url: str, pool: asyncpg.Pool
) -> None:
    async with api_client(database_url) as client:
        created = await client.post(
            "/api/schedules",
            json={
                "name": "digest",
                "cron": "30 2 * * *",
                "timezone": "Europe/Berlin",
                "type": "sleep",
                "payload": {"seconds": 0},
                "priority": 7,
                "catch_up": "all",
                "overlap": "skip",
            },
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert (body["name"], body["cron"], body["every_seconds"], body["source"]) == (
            "digest",
            "30 2 * * *",
            None,
            "api",
        )
        assert (body["queue"], body["priority"], body["max_retries"], body["paused"]) == (
            "default",
            7,
            3,
            False,
        )
        assert (body["catch_up"], body["overlap"]) == ("all", "skip")

        listed = (await client.get("/api/schedules")).json()
        assert [s["name"] for s in listed["schedules"]] == ["digest"]
        assert listed["next_cursor"] is None

        detail = (await client.get("/api/schedules/digest")).json()
        fires = detail["next_fires"]
        assert len(fires) == 5
        for fire in fires:
            local, utc = datetime.fromisoformat(fire["local"]), datetime.fromisoformat(fire["utc"])
            assert local == utc
            assert (local.hour, local.minute) in ((2, 30), (3, 0))  # 03:00 after a spring gap
            assert local.utcoffset() in (timedelta(hours=1), timedelta(hours=2))
            assert utc.utcoffset() == timedelta(0)
        assert fires[0]["utc"] == body["next_run_at"]
        assert detail["recent_fires"] == []

        # Not the timing: the next slot stays. The timing: it moves.
        changed = await client.patch("/api/schedules/digest", json={"priority": 1})
        assert changed.status_code == 200, changed.text
        assert (changed.json()["priority"], changed.json()["next_run_at"]) == (
            1,
            body["next_run_at"],
        )
        retimed = (await client.patch("/api/schedules/digest", json={"every_seconds": 60})).json()
        assert (retimed["cron"], retimed["every_seconds"]) == (None, 60)
        assert retimed["next_run_at"] != body["next_run_at"]
        assert retimed["timezone"] == "Europe/Berlin"
        back = (await client.patch("/api/schedules/digest", json={"cron": "@hourly"})).json()
        assert (back["cron"], back["every_seconds"]) == ("@hourly", None)

        paused = await client.post("/api/schedules/digest/pause")
        assert (paused.status_code, paused.json()["paused"]) == (200, True)
        again = await client.post("/api/schedules/digest/pause")
        assert (again.status_code, again.json()["error"]) == (409, "conflict")
        assert "already paused" in again.json()["message"]

        triggered = await client.post("/api/schedules/digest/trigger")  # paused or not
        assert triggered.status_code == 201
        task = triggered.json()
        assert (task["type"], task["schedule"], task["slot"], task["priority"]) == (
            "sleep",
            "digest",
            None,
            1,
        )
        history = (await client.get(f"/api/tasks/{task['id']}/history")).json()
        assert history[0]["detail"] == {"schedule": "digest", "trigger": "manual"}
        by_schedule = (await client.get("/api/tasks", params={"schedule": "digest"})).json()
        assert [t["id"] for t in by_schedule["tasks"]] == [task["id"]]
        assert (await client.get("/api/tasks", params={"schedule": "x"})).json()["tasks"] == []

        resumed = await client.post("/api/schedules/digest/resume")
        assert (resumed.status_code, resumed.json()["paused"]) == (200, False)
        assert (await client.post("/api/schedules/digest/resume")).status_code == 409

        detail = (await client.get("/api/schedules/digest")).json()
        (fire,) = detail["recent_fires"]
        assert (fire["outcome"], fire["task_id"], fire["task_status"], fire["slot"]) == (
            "triggered",
            task["id"],
            "queued",
            None,
        )

        assert (await client.delete("/api/schedules/digest")).status_code == 204
        assert (await client.get("/api/schedules/digest")).status_code == 404
        assert (await client.delete("/api/schedules/digest")).status_code == 404
        kept = await client.get(f"/api/tasks/{task['id']}")
        assert (kept.status_code, kept.json()["schedule"]) == (200, "digest")


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"cron": "61 * * * *"}, "cron", "Bad minute"),
        ({"cron": "* * *"}, "cron", "5 fields"),
        ({"cron": "@fortnightly"}, "cron", "unknown alias"),
        ({"cron": "0 0 30 2 *"}, "cron", "Bad day-of-month"),
        ({"timezone": "Europe/Atlantis"}, "timezone", "unknown time zone"),
        ({"timezone": "../../../etc/passwd"}, "timezone", "unknown time zone"),
        ({"cron": None, "every_seconds": 0}, "every_seconds", ">= 1"),
        ({"cron": None, "every_seconds": 1.5}, "every_seconds", "int"),
        ({"cron": None, "every_seconds": "60"}, "every_seconds", "int"),
        ({"every_seconds": 60}, "every_seconds", "not both"),
        ({"cron": None}, "cron", "give cron or every_seconds"),
        ({"type": "nope"}, "type", "unknown task type"),
        ({"type": "sleep", "payload": {"seconds": "x"}}, "payload.seconds", "Expected"),
        ({"name": "has space"}, "name", "matching regex"),
        ({"name": ""}, "name", "length"),
        ({"catch_up": "some"}, "catch_up", "Invalid enum value"),
        ({"overlap": "never"}, "overlap", "Invalid enum value"),
        ({"priority": 5000}, "priority", "<= 1000"),
        ({"color": "red"}, "color", "unknown field"),
    ],
)
async def test_invalid_definitions_are_422_naming_the_field(
    database_url: str, change: dict[str, Any], field: str, says: str
) -> None:
    definition = {"name": "nightly", "cron": "0 3 * * *", "type": "noop", **change}
    async with api_client(database_url) as client:
        response = await client.post("/api/schedules", json=definition)
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["status"], body["field"]) == (422, field), body
    assert says in body["message"], body


async def test_invalid_changes_are_422_and_change_nothing(database_url: str) -> None:
    async with api_client(database_url) as client:
        await client.post("/api/schedules", json={"name": "n", "cron": "0 3 * * *", "type": "noop"})
        for change, field in (
            ({"cron": "0 25 * * *"}, "cron"),
            ({"timezone": "Nowhere/Land"}, "timezone"),
            ({"timezone": "localtime"}, "timezone"),
            ({"every_seconds": -5}, "every_seconds"),
            ({"name": "renamed"}, "name"),
            ({"type": "nope"}, "type"),
        ):
            response = await client.patch("/api/schedules/n", json=change)
            assert (response.status_code, response.json()["field"]) == (422, field)
        malformed = await client.patch(
            "/api/schedules/n", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert malformed.status_code == 400
        unchanged = (await client.get("/api/schedules/n")).json()
        assert (unchanged["cron"], unchanged["timezone"], unchanged["type"]) == (
            "0 3 * * *",
            "UTC",
            "noop",
        )


async def test_conflicts_and_unknown_names(database_url: str, tq: TaskQueue) -> None:
    from taskqueue.models import NewSchedule

    await tq.define_schedules([NewSchedule(name="coded", type="noop", cron="@daily")])
    async with api_client(database_url) as client:
        first = await client.post(
            "/api/schedules", json={"name": "a", "type": "noop", "every_seconds": 60}
        )
        assert first.status_code == 201
        taken = await client.post(
            "/api/schedules", json={"name": "a", "type": "noop", "cron": "@daily"}
        )
        assert (taken.status_code, taken.json()["error"]) == (409, "conflict")
        coded = await client.patch("/api/schedules/coded", json={"priority": 3})
        assert coded.status_code == 409
        assert "defined in code" in coded.json()["message"]
        # Pausing a code-defined schedule is the operator's call.
        assert (await client.post("/api/schedules/coded/pause")).status_code == 200

        for method, path in (
            ("GET", "/api/schedules/missing"),
            ("PATCH", "/api/schedules/missing"),
            ("DELETE", "/api/schedules/missing"),
            ("POST", "/api/schedules/missing/pause"),
            ("POST", "/api/schedules/missing/resume"),
            ("POST", "/api/schedules/missing/trigger"),
        ):
            response = await client.request(method, path, json={} if method == "PATCH" else None)
            assert (response.status_code, response.json()["error"]) == (404, "not_found"), path
        # Text PostgreSQL cannot hold never reaches it: not found, or a 422.
        assert (await client.get("/api/schedules/a%00b")).status_code == 404
        assert (await client.post("/api/schedules/a%00b/trigger")).status_code == 404
        bad_cursor = await client.get("/api/schedules", params={"cursor": "a\x00b"})
        assert (bad_cursor.status_code, bad_cursor.json()["field"]) == (422, "cursor")
        bad_filter = await client.get("/api/tasks", params={"schedule": "a\x00b"})
        assert (bad_filter.status_code, bad_filter.json()["field"]) == (422, "schedule")


async def test_reading_schedules_needs_read_and_changing_them_write(database_url: str) -> None:
    tokens = f"{WRITER}:read+write,{READER}:read"
    async with api_client(database_url, api_tokens=tokens) as client:
        definition = {"name": "s", "type": "noop", "cron": "@hourly"}
        assert (await client.post("/api/schedules", json=definition)).status_code == 401
        denied = await client.post("/api/schedules", json=definition, headers=bearer(READER))
        assert denied.status_code == 403
        made = await client.post("/api/schedules", json=definition, headers=bearer(WRITER))
        assert made.status_code == 201
        assert (await client.get("/api/schedules/s", headers=bearer(READER))).status_code == 200
        for method, path in (
            ("PATCH", "/api/schedules/s"),
            ("DELETE", "/api/schedules/s"),
            ("POST", "/api/schedules/s/trigger"),
        ):
            response = await client.request(method, path, json={}, headers=bearer(READER))
            assert response.status_code == 403, path


async def test_openapi_documents_every_schedule_operation_and_its_errors(
    database_url: str,
) -> None:
    async with api_client(database_url) as client:
        spec = (await client.get("/schema/openapi.json")).json()
    paths = spec["paths"]
    documented = {
        (method.upper(), path): operation
        for path, item in paths.items()
        if path.startswith("/api/schedules")
        for method, operation in item.items()
        if method in ("get", "post", "patch", "delete")
    }
    expected = {
        ("GET", "/api/schedules"): {"200", "422"},
        ("POST", "/api/schedules"): {"201", "400", "409", "413", "422"},
        ("GET", "/api/schedules/{name}"): {"200", "404"},
        ("PATCH", "/api/schedules/{name}"): {"200", "400", "404", "409", "422"},
        ("DELETE", "/api/schedules/{name}"): {"204", "404"},
        ("POST", "/api/schedules/{name}/pause"): {"200", "404", "409"},
        ("POST", "/api/schedules/{name}/resume"): {"200", "404", "409"},
        ("POST", "/api/schedules/{name}/trigger"): {"201", "404"},
    }
    assert set(documented) == set(expected)
    for key, codes in expected.items():
        operation = documented[key]
        assert codes | {"401", "403", "503"} <= set(operation["responses"]), key
        assert operation["security"] == [{"BearerToken": []}]
    create = documented[("POST", "/api/schedules")]["requestBody"]["content"]
    assert {"name", "cron", "every_seconds", "timezone", "catch_up", "overlap"} <= set(
        create["application/json"]["schema"]["properties"]
    )
    patch = documented[("PATCH", "/api/schedules/{name}")]["requestBody"]["content"]
    assert "name" not in patch["application/json"]["schema"]["properties"]


async def cli(database_url: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    env.pop("TASKQUEUE_DATABASE_URL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskqueue.cli",
        "schedules",
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_schedules_command(database_url: str, tq: TaskQueue) -> None:
    code, out, err = await cli(
        database_url,
        "add",
        "cleanup",
        "--every",
        "3600",
        "--type",
        "sleep",
        "--payload",
        '{"seconds": 0}',
        "--overlap",
        "skip",
    )
    assert code == 0, err
    assert '"every_seconds": 3600' in out
    code, out, err = await cli(
        database_url, "add", "report", "--cron", "0 9 * * MON-FRI", "--timezone",
        "America/New_York", "--type", "noop",
    )  # fmt: skip
    assert code == 0, err

    code, out, _ = await cli(database_url, "list")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["name", "when", "timezone"]
    assert lines[1].split()[:3] == ["cleanup", "every", "3600s"]
    assert "America/New_York" in lines[2]

    assert (await cli(database_url, "pause", "report"))[0] == 0
    assert (await tq.get_schedule("report")).paused
    code, _, err = await cli(database_url, "pause", "report")
    assert code == 2
    assert "already paused" in err
    assert (await cli(database_url, "resume", "report"))[0] == 0
    code, out, err = await cli(database_url, "trigger", "cleanup")
    assert code == 0, err
    assert '"schedule": "cleanup"' in out
    code, out, _ = await cli(database_url, "show", "cleanup")
    assert '"next_fires"' in out
    assert '"outcome": "triggered"' in out
    assert (await cli(database_url, "delete", "cleanup"))[0] == 0
    assert [s.name for s in await tq.list_schedules()] == ["report"]

    code, _, err = await cli(database_url, "add", "bad", "--cron", "99 * * * *", "--type", "noop")
    assert code == 2
    assert "cron: Bad minute" in err
    code, _, err = await cli(
        database_url, "add", "bad", "--cron", "@daily", "--timezone", "Mars/Base", "--type", "noop"
    )
    assert (code, "timezone: unknown time zone" in err) == (2, True)
    code, _, err = await cli(database_url, "delete", "missing")
    assert (code, "not found" in err) == (2, True)
