"""Queues, workers and failure groups come in pages, on the API (limit,
offset and a Link header to the next page) and on the dashboard (a page of
100 and a Next link); the Overview shows the busiest queues only."""

from __future__ import annotations

import re

import asyncpg
import pytest

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.errors import InvalidArgument
from taskqueue.models import NewTask
from tests.api_helpers import api_client
from tests.helpers import all_in_status, running_worker, wait_until

QUEUES = 250


@pytest.fixture
async def many_queues(tq: TaskQueue) -> list[str]:
    names = [f"q{i:03d}" for i in range(QUEUES)]
    await tq.enqueue_many([NewTask(type="noop", queue=name) for name in names])
    return names


async def test_the_queue_list_pages_by_name(database_url: str, many_queues: list[str]) -> None:
    seen: list[str] = []
    async with api_client(database_url) as client:
        url: str | None = "/api/queues?limit=100"
        pages = 0
        while url is not None:
            response = await client.get(url)
            assert response.status_code == 200, response.text
            seen += [q["name"] for q in response.json()]
            pages += 1
            link = response.headers.get("link")
            found = re.fullmatch(r'<([^>]+)>; rel="next"', link or "")
            url = found.group(1) if found else None
        assert (await client.get("/api/queues")).json()[0]["name"] == "q000"
        refused = await client.get("/api/queues?limit=1001")
        assert (refused.status_code, refused.json()["field"]) == (422, "limit")
        assert (await client.get("/api/queues?offset=-1")).status_code in (400, 422)
    assert pages == 3
    assert seen == many_queues


async def test_dashboard_queue_pages_and_a_capped_overview(
    database_url: str, many_queues: list[str]
) -> None:
    async with api_client(database_url) as client:
        first = (await client.get("/queues")).text
        last = (await client.get("/queues?offset=200")).text
        overview = (await client.get("/")).text
    assert first.count("<tr data-queue=") == 100
    assert 'href="/queues?offset=100" rel="next"' in first
    assert last.count("<tr data-queue=") == 50
    assert 'rel="next"' not in last and 'href="/queues">← First' in last
    assert overview.count("<tr data-queue=") == 50
    assert f"All {QUEUES} queues" in overview


async def test_workers_page_on_the_api_and_the_dashboard(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    for i in range(3):
        async with pool.acquire() as conn:
            await store.register_worker(
                conn,
                f"w{i}",
                host="h",
                pid=i,
                queues=["default"],
                types=["noop"],
                concurrency=1,
                version="t",
                heartbeat_seconds=5,
            )
    assert len(await tq.workers()) == 3
    assert len(await tq.workers(offset=1, limit=1)) == 1
    with pytest.raises(InvalidArgument):
        await tq.workers(offset=-1)
    async with api_client(database_url) as client:
        page = await client.get("/api/workers?limit=2")
        rest = await client.get("/api/workers?limit=2&offset=2")
        dashboard = await client.get("/workers?offset=1")
    assert len(page.json()) == 2 and page.headers["link"].endswith('offset=2>; rel="next"')
    assert len(rest.json()) == 1 and "link" not in rest.headers
    assert dashboard.status_code == 200 and 'href="/workers">← First' in dashboard.text


async def test_failure_groups_page(tq: TaskQueue, pool: asyncpg.Pool, database_url: str) -> None:
    failing = await tq.enqueue_many(
        [
            NewTask(type="fail", payload={"message": f"fault {c}"}, queue=f"q{c}", max_retries=0)
            for c in "abc"
        ]
    )
    async with running_worker(database_url, queues=("qa", "qb", "qc")):
        await wait_until(lambda: all_in_status(pool, [t.id for t in failing], "failed"))
    async with api_client(database_url) as client:
        first = await client.get("/api/failures?limit=2")
        second = await client.get("/api/failures?limit=2&offset=2")
        page = await client.get("/failures?offset=2")
    assert len(first.json()) == 2 and 'offset=2>; rel="next"' in first.headers["link"]
    assert len(second.json()) == 1 and "link" not in second.headers
    groups = {g["queue"] for g in first.json() + second.json()}
    assert groups == {"qa", "qb", "qc"}
    assert page.status_code == 200 and 'href="/failures">← First' in page.text
