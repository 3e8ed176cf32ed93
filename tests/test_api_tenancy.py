"""Tenants over the real API against real PostgreSQL: a tenant's token (a
configured one with a fourth field, or a JWT with a `tenant` claim) stamps
its tasks, sees and changes only its own on every route (the event stream
from a real API process included), and reaches no operator route; an
operator's token sees everything, with a tenant filter."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
from litestar.testing import AsyncTestClient

from taskqueue.api.stream import Filters
from taskqueue.client import TaskQueue
from tests.api_helpers import api_client, api_process, free_port
from tests.helpers import running_worker, wait_until
from tests.test_api_events import listening

OPERATOR = "operator-token-0123456789"
ACME = "acme-token-0123456789abc"
GLOBEX = "globex-token-0123456789ab"
TOKENS = f"{OPERATOR}:read+write:ops,{ACME}:read+write:acme-bot:acme,{GLOBEX}::globex-bot:globex"
JWT_SECRET = "s" * 32


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def seed(client: AsyncTestClient[Any]) -> dict[str, str]:
    """One task of each tenant and one without a tenant; their ids."""
    ids = {}
    for token, label in ((ACME, "acme"), (GLOBEX, "globex"), (OPERATOR, "none")):
        created = await client.post(
            "/api/tasks", json={"type": "noop", "queue": "shared"}, headers=bearer(token)
        )
        assert created.status_code == 201, created.text
        ids[label] = created.json()["id"]
    return ids


async def test_an_idempotency_key_is_the_tenants_own(database_url: str) -> None:
    # 0027_idempotency_per_tenant: the same Idempotency-Key from two tenants
    # makes two tasks (201 each); each tenant's repeat returns its own (200).
    async with api_client(database_url, api_tokens=TOKENS) as client:
        made = {}
        for token in (ACME, GLOBEX):
            created = await client.post(
                "/api/tasks",
                json={"type": "noop"},
                headers={**bearer(token), "Idempotency-Key": "order-7"},
            )
            assert created.status_code == 201, created.text
            made[token] = created.json()["id"]
        assert made[ACME] != made[GLOBEX]
        for token in (ACME, GLOBEX):
            again = await client.post(
                "/api/tasks",
                json={"type": "noop"},
                headers={**bearer(token), "Idempotency-Key": "order-7"},
            )
            assert (again.status_code, again.json()["id"]) == (200, made[token])


async def test_a_tenant_token_stamps_its_tasks_and_cannot_name_another_tenant(
    database_url: str, pool: asyncpg.Pool
) -> None:
    async with api_client(database_url, api_tokens=TOKENS) as client:
        one = await client.post("/api/tasks", json={"type": "noop"}, headers=bearer(ACME))
        assert one.status_code == 201 and one.json()["tenant"] == "acme"
        same = await client.post(
            "/api/tasks", json={"type": "noop", "tenant": "acme"}, headers=bearer(ACME)
        )
        assert same.status_code == 201 and same.json()["tenant"] == "acme"
        batch = await client.post(
            "/api/tasks/batch", json={"tasks": [{"type": "noop"}] * 3}, headers=bearer(ACME)
        )
        assert batch.status_code == 201 and {t["tenant"] for t in batch.json()} == {"acme"}
        before = await pool.fetchval("SELECT count(*) FROM taskqueue.tasks")
        for path, body in (
            ("/api/tasks", {"type": "noop", "tenant": "globex"}),
            ("/api/tasks/batch", {"tasks": [{"type": "noop"}, {"type": "noop", "tenant": "x"}]}),
            ("/api/workflows", {"tasks": [{"ref": "a", "type": "noop", "tenant": "globex"}]}),
        ):
            refused = await client.post(path, json=body, headers=bearer(ACME))
            assert refused.status_code == 403, (path, refused.text)
            assert "acme" in refused.json()["message"]
        assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == before
        # An operator may enqueue for any tenant.
        chosen = await client.post(
            "/api/tasks", json={"type": "noop", "tenant": "globex"}, headers=bearer(OPERATOR)
        )
        assert chosen.status_code == 201 and chosen.json()["tenant"] == "globex"


async def test_every_task_route_shows_a_tenant_only_its_own_tasks(database_url: str) -> None:
    async with api_client(database_url, api_tokens=TOKENS) as client:
        ids = await seed(client)
        acme, globex = bearer(ACME), bearer(GLOBEX)
        listed = (await client.get("/api/tasks", headers=acme)).json()["tasks"]
        assert [t["id"] for t in listed] == [ids["acme"]]
        filtered = await client.get("/api/tasks?queue=shared&status=queued", headers=acme)
        assert [t["id"] for t in filtered.json()["tasks"]] == [ids["acme"]]
        other = await client.get("/api/tasks?tenant=globex", headers=acme)
        assert other.status_code == 403
        for foreign in (ids["globex"], ids["none"]):
            for suffix in ("", "/history", "/result"):
                seen = await client.get(f"/api/tasks/{foreign}{suffix}", headers=acme)
                assert seen.status_code == 404, (suffix, seen.text)
            for action in ("cancel", "retry"):
                acted = await client.post(f"/api/tasks/{foreign}/{action}", headers=acme)
                assert acted.status_code == 404, (action, acted.text)
        waits_on_foreign = await client.post(
            "/api/tasks", json={"type": "noop", "depends_on": [ids["globex"]]}, headers=acme
        )
        assert waits_on_foreign.status_code == 422  # as if it did not exist
        own = await client.get(f"/api/tasks/{ids['acme']}/history", headers=acme)
        assert own.status_code == 200 and own.json()[0]["event_type"] == "task_queued"
        assert (
            await client.get(f"/api/tasks/{ids['acme']}/result", headers=acme)
        ).status_code == 202
        # Bulk actions touch the tenant's tasks alone, by filter and by ids.
        by_ids = await client.post(
            "/api/tasks/cancel", json={"ids": [ids["globex"], ids["none"]]}, headers=acme
        )
        assert by_ids.json()["matched"] == 0
        by_filter = await client.post(
            "/api/tasks/cancel", json={"filter": {"queue": "shared"}}, headers=acme
        )
        assert (by_filter.json()["matched"], by_filter.json()["changed"]) == (1, 1)
        statuses = {
            label: (await client.get(f"/api/tasks/{i}", headers=bearer(OPERATOR))).json()["status"]
            for label, i in ids.items()
        }
        assert statuses == {"acme": "cancelled", "globex": "queued", "none": "queued"}
        stats = (await client.get("/api/stats", headers=acme)).json()
        assert (stats["total_tasks"], stats["cancelled_tasks"], stats["queued_tasks"]) == (1, 1, 0)
        assert (await client.get("/api/stats", headers=globex)).json()["queued_tasks"] == 1
        assert (await client.get("/api/stats?tenant=globex", headers=acme)).status_code == 403
        # The operator counts every task, or one tenant's.
        operator = bearer(OPERATOR)
        assert (await client.get("/api/stats", headers=operator)).json()["total_tasks"] == 3
        theirs = (await client.get("/api/stats?tenant=acme", headers=operator)).json()
        assert (theirs["total_tasks"], theirs["cancelled_tasks"]) == (1, 1)
        assert [q["queue"] for q in theirs["queues"]] == ["shared"]
        bad = await client.get("/api/stats?tenant=a%20b", headers=operator)
        assert (bad.status_code, bad.json().get("field")) == (422, "tenant"), bad.text
        # The operator sees everything, and may filter by tenant.
        everything = (await client.get("/api/tasks", headers=bearer(OPERATOR))).json()["tasks"]
        assert len(everything) == 3
        only = await client.get("/api/tasks?tenant=globex", headers=bearer(OPERATOR))
        assert [t["id"] for t in only.json()["tasks"]] == [ids["globex"]]


async def test_failures_and_workflows_are_scoped_to_the_tenant(
    database_url: str, tq: TaskQueue
) -> None:
    async with api_client(database_url, api_tokens=TOKENS) as client:
        acme, globex = bearer(ACME), bearer(GLOBEX)
        flows = {}
        for token, label in ((ACME, "acme"), (GLOBEX, "globex")):
            made = await client.post(
                "/api/workflows",
                json={"name": label, "tasks": [{"ref": "boom", "type": "fail", "max_retries": 0}]},
                headers=bearer(token),
            )
            assert made.status_code == 201, made.text
            flows[label] = made.json()["id"]
        listed = (await client.get("/api/workflows", headers=acme)).json()["workflows"]
        assert [w["id"] for w in listed] == [flows["acme"]]
        assert (
            await client.get(f"/api/workflows/{flows['globex']}", headers=acme)
        ).status_code == 404
        assert (
            await client.get(f"/api/workflows/{flows['acme']}", headers=acme)
        ).status_code == 200
        # The operator sees both, and may filter by tenant; a tenant may not.
        operator = bearer(OPERATOR)
        everyone = (await client.get("/api/workflows", headers=operator)).json()["workflows"]
        assert {w["id"] for w in everyone} == set(flows.values())
        one = await client.get("/api/workflows?tenant=globex", headers=operator)
        assert [w["id"] for w in one.json()["workflows"]] == [flows["globex"]]
        assert (await client.get("/api/workflows?tenant=globex", headers=acme)).status_code == 403
        own = await client.get("/api/workflows?tenant=acme&limit=5", headers=acme)
        assert [w["id"] for w in own.json()["workflows"]] == [flows["acme"]]

        async def both_failed() -> bool:
            return (await tq.stats()).failed_tasks == 2

        async with running_worker(database_url):
            await wait_until(both_failed)
        groups = (await client.get("/api/failures", headers=acme)).json()
        assert [g["count"] for g in groups] == [1]
        assert (await client.get("/api/failures?tenant=acme", headers=globex)).status_code == 403
        everyone = (await client.get("/api/failures", headers=bearer(OPERATOR))).json()
        assert [g["count"] for g in everyone] == [2]
        one = await client.get("/api/failures?tenant=globex", headers=bearer(OPERATOR))
        assert [g["count"] for g in one.json()] == [1]


async def test_operator_routes_refuse_a_tenant_token(database_url: str) -> None:
    async with api_client(database_url, api_tokens=TOKENS) as client:
        acme = bearer(ACME)
        for method, path in (
            ("GET", "/api/queues"),
            ("GET", "/api/queues/default"),
            ("POST", "/api/queues/default/pause"),
            ("PATCH", "/api/queues/default"),
            ("GET", "/api/workers"),
            ("GET", "/api/actions"),
            ("GET", "/api/schedules"),
            ("POST", "/api/schedules"),
            ("GET", "/api/tenants/globex"),
            ("PATCH", "/api/tenants/acme"),
        ):
            answered = await client.request(method, path, headers=acme, json={})
            assert answered.status_code == 403, (method, path, answered.text)
        own = await client.get("/api/tenants/acme", headers=acme)
        assert own.status_code == 200 and own.json()["name"] == "acme"
        assert (await client.get("/api/queues", headers=bearer(OPERATOR))).status_code == 200


async def test_a_jwt_with_a_tenant_claim_acts_for_that_tenant(database_url: str) -> None:
    def token(**claims: Any) -> str:
        claims.setdefault("exp", time.time() + 60)
        return jwt.encode({"scope": "read write", **claims}, JWT_SECRET, algorithm="HS256")

    async with api_client(database_url, jwt_secret=JWT_SECRET) as client:
        made = await client.post(
            "/api/tasks", json={"type": "noop"}, headers=bearer(token(tenant="initech"))
        )
        assert made.status_code == 201 and made.json()["tenant"] == "initech"
        other = await client.post(
            "/api/tasks", json={"type": "noop"}, headers=bearer(token(tenant="hooli"))
        )
        hooli = bearer(token(tenant="hooli"))
        assert (
            await client.get(f"/api/tasks/{made.json()['id']}", headers=hooli)
        ).status_code == 404
        listed = (await client.get("/api/tasks", headers=hooli)).json()["tasks"]
        assert [t["id"] for t in listed] == [other.json()["id"]]
        assert (await client.get("/api/workers", headers=hooli)).status_code == 403
        malformed = await client.get("/api/tasks", headers=bearer(token(tenant="a b")))
        assert malformed.status_code == 401
        operator = (await client.get("/api/tasks", headers=bearer(token()))).json()["tasks"]
        assert len(operator) == 2


async def test_the_event_stream_carries_only_the_tenants_own_events(
    database_url: str, tq: TaskQueue
) -> None:
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    async with (
        api_process(database_url, log, port=free_port(), api_tokens=TOKENS) as (base, _),
        listening(base, headers=bearer(ACME)) as acme,
        listening(base, headers=bearer(OPERATOR)) as operator,
        listening(base, "/api/events?tenant=acme", headers=bearer(OPERATOR)) as filtered,
    ):
        theirs = await tq.enqueue("noop", tenant="globex")
        untenanted = await tq.enqueue("noop")
        mine = await tq.enqueue("noop", tenant="acme")
        await tq.pause("elsewhere")  # an operator action: never a tenant's news

        async def operator_saw_all() -> bool:
            seen = {task_id for _, _, task_id in operator.tasks()}
            return {theirs.id, untenanted.id, mine.id} <= seen and any(
                kind == "queue" for _, kind, _ in operator.messages
            )

        await wait_until(operator_saw_all)
        # Sent after everything above was offered to every stream: once the
        # tenant's stream carries it, it carried whatever it would of those.
        last = await tq.enqueue("noop", tenant="acme")

        async def both_saw_the_last() -> bool:
            return all(
                any(task_id == last.id for _, _, task_id in sse.tasks()) for sse in (acme, filtered)
            )

        await wait_until(both_saw_the_last)
        assert {task_id for _, _, task_id in acme.tasks()} == {mine.id, last.id}
        assert {kind for _, kind, _ in acme.messages} == {"task"}
        # An operator's stream filtered by tenant carries the same, and no
        # operator news (a queue paused is no tenant's).
        assert {task_id for _, _, task_id in filtered.tasks()} == {mine.id, last.id}
        assert {kind for _, kind, _ in filtered.messages} == {"task"}
        async with httpx.AsyncClient(base_url=base) as client:
            refused = await client.get("/api/events?tenant=globex", headers=bearer(ACME))
            assert refused.status_code == 403


def test_a_tenants_stream_filter_takes_its_tasks_and_no_operator_news() -> None:
    scoped = Filters(tenant="acme")
    assert not scoped.wants_other(None) and not scoped.wants_other(["default"])
    assert Filters().wants_other(None)
