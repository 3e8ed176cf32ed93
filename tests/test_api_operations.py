"""The operations endpoints over HTTP: queues, workers, failures, bulk
actions, the operator log with who acted, and /health's snapshot."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from taskqueue.client import TaskQueue
from taskqueue.models import NewTask
from tests.api_helpers import api_client
from tests.helpers import running_worker, wait_until
from tests.test_bulk import fail_tasks

WRITER = "writer-token-0123456789"
READER = "reader-token-0123456789"
TOKENS = f"{WRITER}:read+write:deploy-bot,{READER}:read"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_queues_pause_resume_and_limits_over_http(database_url: str, tq: TaskQueue) -> None:
    await tq.enqueue_many([NewTask(type="noop", queue="mail") for _ in range(3)])
    async with api_client(database_url, api_tokens=TOKENS) as client:
        listed = (await client.get("/api/queues", headers=bearer(READER))).json()
        (mail,) = [q for q in listed if q["name"] == "mail"]
        assert (mail["queued"], mail["due"], mail["paused"], mail["rate_limit"]) == (
            3,
            3,
            False,
            None,
        )
        assert set(mail) == {
            "name", "paused", "concurrency_limit", "rate_limit", "per_key_concurrency",
            "queued", "due", "scheduled",
            "retain_succeeded", "retain_failed", "retain_cancelled",
            "running", "waiting", "succeeded", "failed", "cancelled", "expired",
            "oldest_due_age_seconds",
            "finished_last_minute", "failed_last_minute", "workers",
        }  # fmt: skip
        # A read token sees but may not act.
        refused = await client.post("/api/queues/mail/pause", headers=bearer(READER))
        assert refused.status_code == 403
        paused = await client.post("/api/queues/mail/pause", headers=bearer(WRITER))
        assert (paused.status_code, paused.json()["paused"]) == (200, True)
        limited = await client.patch(
            "/api/queues/mail",
            json={"concurrency_limit": 2, "rate_limit": {"limit": 5, "period_seconds": 60}},
            headers=bearer(WRITER),
        )
        assert limited.status_code == 200, limited.text
        assert (limited.json()["concurrency_limit"], limited.json()["rate_limit"]) == (
            2,
            {"limit": 5, "period_seconds": 60.0},
        )
        # A field left out is kept; null removes it.
        kept = await client.patch(
            "/api/queues/mail", json={"rate_limit": None}, headers=bearer(WRITER)
        )
        assert (kept.json()["concurrency_limit"], kept.json()["rate_limit"]) == (2, None)
        per_key = await client.patch(
            "/api/queues/mail", json={"per_key_concurrency": 3}, headers=bearer(WRITER)
        )
        assert (per_key.status_code, per_key.json()["per_key_concurrency"]) == (200, 3)
        listed_again = (await client.get("/api/queues", headers=bearer(READER))).json()
        assert [q["per_key_concurrency"] for q in listed_again if q["name"] == "mail"] == [3]
        for body, field in (
            ({"concurrency_limit": -1}, "concurrency_limit"),
            ({"concurrency_limit": 0}, "concurrency_limit"),
            ({"rate_limit": {"limit": 5, "period_seconds": 0}}, "rate_limit.period_seconds"),
            ({"rate_limit": {"limit": 0, "period_seconds": 1}}, "rate_limit.limit"),
            ({"concurrency": 3}, "concurrency"),
            ({"per_key_concurrency": 0}, "per_key_concurrency"),
            ({}, "body"),
        ):
            bad = await client.patch("/api/queues/mail", json=body, headers=bearer(WRITER))
            assert (bad.status_code, bad.json().get("field")) == (422, field), (body, bad.text)
        bad_name = await client.post("/api/queues/a%20b/pause", headers=bearer(WRITER))
        assert (bad_name.status_code, bad_name.json()["field"]) == (422, "queue")
        missing = await client.get("/api/queues/nowhere", headers=bearer(READER))
        assert missing.status_code == 404
        resumed = await client.post("/api/queues/mail/resume", headers=bearer(WRITER))
        assert resumed.json()["paused"] is False
        actions = (await client.get("/api/actions", headers=bearer(READER))).json()
        assert [(a["action"], a["actor"]) for a in actions] == [
            ("resume", "deploy-bot"),
            ("limit", "deploy-bot"),
            ("limit", "deploy-bot"),
            ("limit", "deploy-bot"),
            ("pause", "deploy-bot"),
        ]
        older = await client.get(
            f"/api/actions?before={actions[1]['id']}&limit=1", headers=bearer(READER)
        )
        assert [a["id"] for a in older.json()] == [actions[2]["id"]]


async def test_queue_retention_over_http(database_url: str, pool: asyncpg.Pool) -> None:
    async with api_client(
        database_url, api_tokens=TOKENS, retain_succeeded="2d", retain_cancelled="12h"
    ) as client:
        # A queue nobody named yet shows this process's defaults.
        fresh = await client.patch(
            "/api/queues/mail", json={"retain_failed": "3w"}, headers=bearer(WRITER)
        )
        assert fresh.status_code == 200, fresh.text
        retention = ("retain_succeeded", "retain_failed", "retain_cancelled")
        assert [fresh.json()[f] for f in retention] == ["2d", "3w", "12h"]
        # Its own retention lives apart from the queue's claim settings.
        assert await pool.fetchval("SELECT count(*) FROM taskqueue.queues") == 0
        both = await client.patch(
            "/api/queues/mail",
            json={"retain_succeeded": "90m", "retain_failed": None, "concurrency_limit": 4},
            headers=bearer(WRITER),
        )
        assert [both.json()[f] for f in retention] == ["90m", "2w", "12h"]
        assert both.json()["concurrency_limit"] == 4
        (listed,) = (await client.get("/api/queues", headers=bearer(READER))).json()
        assert [listed[f] for f in retention] == ["90m", "2w", "12h"]
        one = (await client.get("/api/queues/mail", headers=bearer(READER))).json()
        assert [one[f] for f in retention] == ["90m", "2w", "12h"]
        for body, field in (
            ({"retain_succeeded": "soon"}, "retain_succeeded"),
            ({"retain_failed": "0s"}, "retain_failed"),
            ({"retain_cancelled": "-1d"}, "retain_cancelled"),
            ({"retain_cancelled": 3600}, "retain_cancelled"),
            ({"retain_failed": "1d", "retain_succeeded": "x"}, "retain_succeeded"),
        ):
            bad = await client.patch("/api/queues/mail", json=body, headers=bearer(WRITER))
            assert (bad.status_code, bad.json().get("field")) == (422, field), (body, bad.text)
        refused = await client.patch(
            "/api/queues/mail", json={"retain_failed": "1d"}, headers=bearer(READER)
        )
        assert refused.status_code == 403
        # A bad duration changed nothing, and null everywhere drops the row.
        back = await client.patch(
            "/api/queues/mail",
            json={"retain_succeeded": None, "concurrency_limit": None},
            headers=bearer(WRITER),
        )
        assert [back.json()[f] for f in retention] == ["2d", "2w", "12h"]
        assert await pool.fetchval("SELECT count(*) FROM taskqueue.queue_retention") == 0
        actions = (await client.get("/api/actions", headers=bearer(READER))).json()
        assert [a["action"] for a in actions] == [
            "retention",
            "limit",
            "retention",
            "limit",
            "retention",
        ]
        scopes = [a["scope"] for a in actions if a["action"] == "retention"]
        assert scopes[-1] == {"queue": "mail", "retain_failed": "3w"}
        assert scopes[0] == {"queue": "mail", "retain_succeeded": None}


async def test_failures_and_bulk_actions_over_http(database_url: str, pool: asyncpg.Pool) -> None:
    await fail_tasks(pool, [f"Refused: order {n}" for n in range(7)])
    async with api_client(database_url) as client:
        (group,) = (await client.get("/api/failures")).json()
        assert (group["error"], group["count"], group["queue"]) == (
            "Refused: order <n>",
            7,
            "default",
        )
        by_group = {"queue": group["queue"], "type": group["type"], "error": group["error"]}
        retried = await client.post(
            "/api/tasks/retry", json={"filter": {**by_group, "status": "failed"}, "limit": 5}
        )
        assert retried.status_code == 200, retried.text
        first = retried.json()
        assert (first["matched"], first["changed"]) == (5, 5)
        rest = await client.post(
            "/api/tasks/retry", json={"filter": by_group, "after": first["next"]}
        )
        assert (rest.json()["changed"], rest.json()["next"]) == (2, None)
        queued = (await client.get("/api/tasks?status=queued")).json()["tasks"]
        cancelled = await client.post(
            "/api/tasks/cancel", json={"ids": [t["id"] for t in queued[:3]]}
        )
        assert cancelled.json() == {"matched": 3, "changed": 3, "next": None}
        deleted = await client.post("/api/tasks/delete", json={"filter": {"status": "cancelled"}})
        assert deleted.json()["changed"] == 3
        for body, field in (
            ({}, "ids"),
            ({"ids": [], "filter": {}}, "ids"),
            ({"filter": {"status": "exploded"}}, "filter.status"),
            ({"filter": {"colour": "red"}}, "filter.colour"),
            ({"ids": ["not-a-uuid"]}, "ids[0]"),
            ({"filter": {}, "limit": 10_001}, "limit"),
            ({"filter": {"created_before": "2030-01-01T00:00:00"}}, "filter.created_before"),
        ):
            bad = await client.post("/api/tasks/retry", json=body)
            assert (bad.status_code, bad.json().get("field")) == (422, field), (body, bad.text)
        (workers_page, health) = (await client.get("/api/workers"), await client.get("/health"))
        assert workers_page.json() == []
        assert set(health.json()) == {"status", "database", "workers", "queue_depth"}


async def test_health_reports_live_workers_and_due_tasks_from_a_snapshot(
    database_url: str, tq: TaskQueue
) -> None:
    await tq.pause("default")
    await tq.enqueue_many([NewTask(type="noop") for _ in range(4)])
    async with api_client(database_url) as client:
        # The API's first snapshot saw no worker; one starting now is seen
        # within about a second (not the 5 s refresh of a snapshot with workers).
        await wait_until(lambda: _health_is(client, workers=0, queue_depth=4), timeout=10)
        async with running_worker(database_url, worker_id="w-health"):
            await wait_until(lambda: _live(tq, "w-health"), timeout=20, interval=0.05)
            await wait_until(lambda: _health_is(client, workers=1, queue_depth=4), timeout=3)
            (worker,) = (await client.get("/api/workers")).json()
            assert (worker["id"], worker["state"]) == ("w-health", "running")
            assert uuid.UUID(int=0) != worker["id"]


async def _health_is(client: httpx.AsyncClient, *, workers: int, queue_depth: int) -> bool:
    body = (await client.get("/health")).json()
    expected = {"status": "healthy", "database": "connected"}
    return bool(body == {**expected, "workers": workers, "queue_depth": queue_depth})


async def _live(tq: TaskQueue, worker_id: str) -> bool:
    return any(w.id == worker_id and w.state == "running" for w in await tq.workers())


async def test_inputs_that_reached_sql_or_matched_everything_get_a_4xx(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await fail_tasks(pool, ["x"])
    async with api_client(database_url) as client:
        assert (await client.get("/api/queues/%00")).status_code == 404
        long_name = await client.get("/api/queues/" + "q" * 10_000)
        assert long_name.status_code == 404
        assert len(long_name.text) < 500  # the name is not echoed back whole
        for path, field in (
            ("/api/failures?queue=%00", "queue"),
            ("/api/failures?type=%00", "type"),
            ("/api/failures?since=0001-01-01T00:00:00Z", "since"),
            ("/api/tasks?status=queued&status=failed", "status"),
        ):
            response = await client.get(path)
            assert (response.status_code, response.json().get("field")) == (422, field), path
        assert (await client.get("/health?cache=1")).status_code == 200
        for body, field in (
            ({"filter": {}}, "filter"),
            ({"filter": {"error": ""}}, "filter.error"),
            ({"filter": {"error": "a\u0000b"}}, "filter.error"),
            ({"filter": {"queue": "q\u0000"}}, "filter.queue"),
        ):
            for action in ("retry", "cancel", "delete"):
                response = await client.post(f"/api/tasks/{action}", json=body)
                assert (response.status_code, response.json().get("field")) == (422, field)
        garbled = await client.post("/api/queues/%FF/pause")
        assert (garbled.status_code, garbled.json()["field"]) == (422, "queue")
        ten_thousand = [str(uuid.uuid4()) for _ in range(10_000)]
        accepted = await client.post("/api/tasks/cancel", json={"ids": ten_thousand})
        assert accepted.json() == {"matched": 0, "changed": 0, "next": None}
        too_many = await client.post(
            "/api/tasks/cancel", json={"ids": [*ten_thousand, str(uuid.uuid4())]}
        )
        assert (too_many.status_code, too_many.json()["field"]) == (422, "ids")
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks WHERE status = 'failed'") == 1
