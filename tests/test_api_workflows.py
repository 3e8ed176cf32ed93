"""/api/workflows and depends_on over REST, in-process against real
PostgreSQL, with a real worker draining an ETL-shaped graph in order."""

from __future__ import annotations

import uuid

import asyncpg

from tests.api_helpers import api_client
from tests.helpers import run_audit, running_worker, wait_until

ETL = {
    "name": "nightly-etl",
    "tasks": [
        {"ref": "extract", "type": "noop"},
        {"ref": "clean-a", "type": "noop", "depends_on": ["extract"]},
        {"ref": "clean-b", "type": "noop", "depends_on": ["extract"]},
        {"ref": "load", "type": "noop", "depends_on": ["clean-a", "clean-b"]},
        {"ref": "report", "type": "noop", "depends_on": ["load"], "on_parent_failure": "run"},
    ],
}


async def test_a_workflow_is_accepted_drained_in_order_and_shown_with_its_dependencies(
    database_url: str, pool: asyncpg.Pool
) -> None:
    async with api_client(database_url) as client:
        created = await client.post("/api/workflows", json=ETL)
        assert created.status_code == 201, created.text
        body = created.json()
        statuses = {t["ref"]: t["status"] for t in body["tasks"]}
        assert statuses == {
            "extract": "queued",
            "clean-a": "waiting",
            "clean-b": "waiting",
            "load": "waiting",
            "report": "waiting",
        }
        url = f"/api/workflows/{body['id']}"

        async def finished() -> bool:
            return bool((await client.get(url)).json()["status"] != "running")

        async with running_worker(database_url):
            await wait_until(finished)
        shown = (await client.get(url)).json()
        assert shown["status"] == "succeeded" and shown["name"] == "nightly-etl"
        by_ref = {t["ref"]: t for t in shown["tasks"]}
        assert sorted(by_ref["load"]["depends_on"]) == ["clean-a", "clean-b"]
        assert by_ref["report"]["on_parent_failure"] == ["run"]
        # Every task started after each of its parents completed.
        for task in shown["tasks"]:
            for parent in task["depends_on"]:
                assert task["started_at"] >= by_ref[parent]["completed_at"]
        listed = (await client.get("/api/workflows")).json()
        assert [w["id"] for w in listed["workflows"]] == [body["id"]]
        assert listed["next_cursor"] is None
        assert listed["workflows"][0]["status"] == "succeeded"
        assert listed["workflows"][0]["total"] == 5
    assert await run_audit(pool) == []


async def test_bad_graphs_get_422_naming_the_refs_and_insert_nothing(
    database_url: str, pool: asyncpg.Pool
) -> None:
    cycle = [
        {"ref": "a", "type": "noop", "depends_on": ["b"]},
        {"ref": "b", "type": "noop", "depends_on": ["a"]},
        {"ref": "c", "type": "noop"},
    ]
    async with api_client(database_url) as client:
        for tasks, refs in (
            (cycle, ["a", "b"]),
            ([{"ref": "a", "type": "noop", "depends_on": ["zz"]}], ["zz"]),
            ([{"ref": "a", "type": "noop"}, {"ref": "a", "type": "noop"}], ["a"]),
        ):
            response = await client.post("/api/workflows", json={"tasks": tasks})
            assert response.status_code == 422
            assert response.json()["refs"] == refs
            assert response.json()["field"] == "tasks"
        too_many = [{"ref": str(i), "type": "noop"} for i in range(10_001)]
        response = await client.post("/api/workflows", json={"tasks": too_many})
        assert response.status_code == 422
        bad_field = await client.post(
            "/api/workflows", json={"tasks": [{"ref": "a", "type": "noop", "priority": "x"}]}
        )
        assert bad_field.status_code == 422
        missing = await client.get(f"/api/workflows/{uuid.uuid4()}")
        assert missing.status_code == 404
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == 0


async def test_depends_on_existing_tasks_over_rest(database_url: str, pool: asyncpg.Pool) -> None:
    async with api_client(database_url) as client:
        parent = (await client.post("/api/tasks", json={"type": "noop"})).json()
        child = await client.post("/api/tasks", json={"type": "noop", "depends_on": [parent["id"]]})
        assert child.status_code == 201 and child.json()["status"] == "waiting"
        unknown = await client.post(
            "/api/tasks", json={"type": "noop", "depends_on": [str(uuid.uuid4())]}
        )
        assert unknown.status_code == 422 and unknown.json()["field"] == "depends_on"
        batch = await client.post(
            "/api/tasks/batch",
            json={
                "tasks": [
                    {"type": "noop"},
                    {"type": "noop", "depends_on": [str(uuid.uuid4())]},
                ]
            },
        )
        assert batch.status_code == 422 and batch.json()["field"] == "tasks[1].depends_on"
        ok_batch = await client.post(
            "/api/tasks/batch",
            json={"tasks": [{"type": "noop"}, {"type": "noop", "depends_on": [parent["id"]]}]},
        )
        assert [t["status"] for t in ok_batch.json()] == ["queued", "waiting"]
        queues = (await client.get("/api/queues")).json()
        default = next(q for q in queues if q["name"] == "default")
        assert default["waiting"] == 2
        async with running_worker(database_url):

            async def drained() -> bool:
                n = await pool.fetchval(
                    "SELECT count(*) FROM taskqueue.tasks WHERE status <> 'succeeded'"
                )
                return bool(n == 0)

            await wait_until(drained)
    assert await run_audit(pool) == []


async def test_tasks_and_workflow_steps_carry_the_tenant_they_were_given(
    database_url: str, pool: asyncpg.Pool
) -> None:
    async with api_client(database_url) as client:
        one = await client.post("/api/tasks", json={"type": "noop", "tenant": "acme"})
        assert one.status_code == 201, one.text
        assert one.json()["tenant"] == "acme"
        batch = await client.post(
            "/api/tasks/batch", json={"tasks": [{"type": "noop", "tenant": "acme"}] * 2}
        )
        assert batch.status_code == 201, batch.text
        flow = await client.post(
            "/api/workflows",
            json={"tasks": [{"ref": "a", "type": "noop", "tenant": "acme"}]},
        )
        assert flow.status_code == 201, flow.text
        shown = (await client.get(f"/api/tasks/{one.json()['id']}")).json()
        assert shown["tenant"] == "acme"
        bad = await client.post("/api/tasks", json={"type": "noop", "tenant": "a b"})
        assert bad.status_code == 422 and "tenant" in bad.text
    counted = await pool.fetchval("SELECT count(*) FROM taskqueue.tasks WHERE tenant = 'acme'")
    assert counted == 4


async def test_the_workflow_list_pages_by_next_cursor_newest_first(database_url: str) -> None:
    async with api_client(database_url) as client:
        made = []
        for n in range(3):
            body = {"name": f"flow-{n}", "tasks": [{"ref": "a", "type": "noop"}]}
            response = await client.post("/api/workflows", json=body)
            assert response.status_code == 201, response.text
            made.append(response.json()["id"])
        first = (await client.get("/api/workflows?limit=2")).json()
        assert [w["id"] for w in first["workflows"]] == [made[2], made[1]]
        assert first["next_cursor"] == made[1]
        rest = await client.get(f"/api/workflows?limit=2&cursor={first['next_cursor']}")
        assert rest.status_code == 200, rest.text
        assert [w["id"] for w in rest.json()["workflows"]] == [made[0]]
        assert rest.json()["next_cursor"] is None


async def test_an_operators_dependency_across_tenants_is_a_422_naming_the_field(
    database_url: str, pool: asyncpg.Pool
) -> None:
    async with api_client(database_url) as client:
        made = await client.post("/api/tasks", json={"type": "noop", "tenant": "acme"})
        assert made.status_code == 201, made.text
        acme = made.json()["id"]
        one = await client.post(
            "/api/tasks", json={"type": "noop", "tenant": "globex", "depends_on": [acme]}
        )
        assert one.status_code == 422, one.text
        assert one.json()["field"] == "depends_on"
        assert f"tasks of another tenant: {acme}" in one.json()["message"]
        batch = await client.post(
            "/api/tasks/batch",
            json={
                "tasks": [
                    {"type": "noop", "tenant": "acme", "depends_on": [acme]},
                    {"type": "noop", "depends_on": [acme]},
                ]
            },
        )
        assert batch.status_code == 422, batch.text
        assert batch.json()["field"] == "tasks[1].depends_on"
        graph = await client.post(
            "/api/workflows",
            json={
                "tasks": [
                    {"ref": "a", "type": "noop", "tenant": "acme"},
                    {"ref": "b", "type": "noop", "tenant": "globex", "depends_on": ["a"]},
                ]
            },
        )
        assert graph.status_code == 422, graph.text
        assert graph.json()["error"] == "invalid_workflow" and graph.json()["refs"] == ["b"]
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == 1
