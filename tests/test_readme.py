"""The README's psql queries run against the real schema and find real rows."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg

from taskqueue.client import TaskQueue
from tests.helpers import all_in_status, running_worker, wait_until

README = Path(__file__).resolve().parent.parent / "README.md"


def audit_queries() -> list[str]:
    text = README.read_text()
    section = text.split("## Audit with psql", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL)


async def test_readme_audit_queries_run_and_see_the_trail(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    queries = audit_queries()
    assert len(queries) >= 4
    ok = await tq.enqueue("noop")
    failing = await tq.enqueue("fail", max_retries=1)
    async with running_worker(database_url):
        await wait_until(lambda: all_in_status(pool, [ok.id], "succeeded"))
        await wait_until(lambda: all_in_status(pool, [failing.id], "failed"))
    results = []
    for sql in queries:
        sql = re.sub(r"'[0-9a-f-]{36}'", f"'{failing.id}'", sql)
        results.append(await pool.fetch(sql))
    timeline, failures, retried, by_worker = results[:4]
    assert [r["event_type"] for r in timeline] == [
        "task_queued",
        "task_started",
        "task_retry_scheduled",
        "task_started",
        "task_failed",
    ]
    assert {r["task_id"] for r in failures} == {failing.id}
    assert [r["id"] for r in retried] == [failing.id]
    assert sum(r["attempts"] for r in by_worker) == 3
