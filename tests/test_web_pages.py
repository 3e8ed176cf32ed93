"""The dashboard's pages for a session signed in with a tenant's token,
over HTTP against real PostgreSQL: that tenant's view (its tasks, with the
tenant column; its quota use; its failures and workflows), another tenant's
task a 404, the operator's pages refused; and an operator's tenant filter."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from taskqueue.client import TaskQueue
from taskqueue.workflows import Workflow
from tests.api_helpers import api_client

OPERATOR = "operator-token-0123456789"
ACME = "acme-token-0123456789abc"
TOKENS = f"{OPERATOR}:read+write:ops,{ACME}:read+write:acme-bot:acme"


async def sign_in(client: AsyncTestClient[Any], token: str) -> None:
    answer = await client.post("/login", json={"token": token, "next": "/tasks"})
    assert answer.status_code == 200, answer.text


async def test_a_tenant_session_sees_its_own_view_of_every_page(
    database_url: str, tq: TaskQueue
) -> None:
    await tq.tenants.set_limits("acme", max_queued=50, rate=(30, 60))
    mine = await tq.enqueue("noop", name="mine-task", tenant="acme", queue="acme-q")
    theirs = await tq.enqueue("noop", name="their-task", tenant="globex", queue="globex-q")
    nobodys = await tq.enqueue("noop", name="nobodys-task", queue="plain-q")
    flow = Workflow("their-flow")
    flow.add("noop", {}, tenant="globex")
    their_flow = await tq.workflows.submit(flow)
    async with api_client(database_url, api_tokens=TOKENS) as client:
        await sign_in(client, ACME)
        home = await client.get("/", follow_redirects=False)
        assert (home.status_code, home.headers["location"]) == (303, "/tasks")
        tasks = (await client.get("/tasks")).text
        assert "mine-task" in tasks and "their-task" not in tasks and "nobodys-task" not in tasks
        assert "Unfinished tasks: <strong>1</strong> of at most <strong>50</strong>" in tasks
        assert "the last 60 s: <strong>0</strong> of at most <strong>30</strong> (rate" in tasks
        assert "globex-q" not in tasks and "plain-q" not in tasks  # no other queue's name
        assert not any(f'href="/{p}"' in tasks for p in ("queues", "workers", "tenants"))
        searched = (await client.get("/tasks?q=their")).text
        assert "their-task" not in searched
        assert "mine-task" in (await client.get("/tasks?q=mine")).text
        assert (await client.get(f"/tasks/{mine.id}")).status_code == 200
        for other in (theirs.id, nobodys.id):
            assert (await client.get(f"/tasks/{other}")).status_code == 404
            assert "their-task" not in (await client.get(f"/tasks?q={other}")).text
        assert (await client.get(f"/workflows/{their_flow.id}")).status_code == 404
        assert str(their_flow.id) not in (await client.get("/workflows")).text
        for page in ("/queues", "/workers", "/tenants"):
            assert (await client.get(page)).status_code == 403, page
        assert (await client.get("/tasks?tenant=globex")).status_code == 403
        assert (await client.get("/failures")).status_code == 200

    async with api_client(database_url, api_tokens=TOKENS) as client:
        await sign_in(client, OPERATOR)
        everything = (await client.get("/tasks")).text
        assert all(n in everything for n in ("mine-task", "their-task", "nobodys-task"))
        assert ">globex<" in everything  # the tenant column
        only = (await client.get("/tasks?tenant=globex")).text
        assert "their-task" in only and "mine-task" not in only
        assert (await client.get("/queues")).status_code == 200
        # Every tenant's quota use: acme has a quota and a rate limit;
        # globex has neither, so it is not counted and not listed.
        listed = (await client.get("/tenants")).text
        assert 'data-tenant="acme"' in listed and 'data-tenant="globex"' not in listed
        assert '<td class="num" data-quota-used>2 %</td>' in listed
        assert '<td class="num" data-recent-starts>0 of 30</td>' in listed
