"""GET /api/tasks/{id}/result: at once, or waiting on the API's one LISTEN
until the task ends (200) or the wait runs out (202); bad waits are a 422
naming `wait`; the result size limit fails a task with a clear error."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.errors import TaskFailed
from taskqueue.models import Outcome, OutcomeKind
from tests.api_helpers import api_client, api_process
from tests.helpers import running_worker, wait_until


async def test_a_wait_answers_as_soon_as_the_task_ends(
    database_url: str, pool: asyncpg.Pool, tq: TaskQueue, tmp_path: Path
) -> None:
    task = await tq.enqueue("noop", queue="held")
    async with (
        api_process(database_url, tmp_path / "api.log") as (base, _),
        httpx.AsyncClient(base_url=base, timeout=60) as client,
    ):
        waiting = asyncio.create_task(client.get(f"/api/tasks/{task.id}/result?wait=30"))
        # The API opens its one LISTEN for the first waiter.
        await wait_until(lambda: _listening(pool))
        assert not waiting.done()
        # Finish it as a worker would, in this test's own time.
        (claimed,) = await store.claim_tasks(pool, ["held"], 1, "w1", 30, types=["noop"])
        before = time.monotonic()
        await store.complete_tasks(
            pool,
            [Outcome(task_id=task.id, attempt=1, kind=OutcomeKind.SUCCEEDED, result={"n": 7})],
            "w1",
        )
        answer = await asyncio.wait_for(waiting, 10)
        assert time.monotonic() - before < 2  # woken, not timed out
    assert claimed.id == task.id
    assert answer.status_code == 200
    assert answer.json() == {
        "id": str(task.id),
        "status": "succeeded",
        "result": {"n": 7},
        "error": None,
        "attempts": 1,
    }


async def _listening(pool: asyncpg.Pool) -> bool:
    found = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = 'taskqueue-api-results' AND datname = current_database()"
    )
    return bool(found)


async def test_a_wait_that_runs_out_answers_202_with_the_current_status(
    database_url: str, tq: TaskQueue
) -> None:
    task = await tq.enqueue("noop", queue="held")
    async with api_client(database_url) as client:
        answer = await client.get(f"/api/tasks/{task.id}/result?wait=0.2")
        assert answer.status_code == 202
        assert answer.json()["status"] == "queued" and answer.json()["result"] is None
        at_once = await client.get(f"/api/tasks/{task.id}/result")
        assert at_once.status_code == 202


async def test_a_task_that_already_ended_answers_at_once(database_url: str, tq: TaskQueue) -> None:
    task = await tq.enqueue("noop", queue="held")
    await tq.cancel(task.id)
    async with api_client(database_url) as client:
        answer = await client.get(f"/api/tasks/{task.id}/result?wait=60")
        assert answer.status_code == 200
        assert answer.json()["status"] == "cancelled"


async def test_bad_waits_and_unknown_tasks(database_url: str, tq: TaskQueue) -> None:
    task = await tq.enqueue("noop", queue="held")
    async with api_client(database_url) as client:
        for bad in ("abc", "-1", "61", "nan"):
            answer = await client.get(f"/api/tasks/{task.id}/result?wait={bad}")
            assert answer.status_code == 422, (bad, answer.text)
            assert answer.json()["field"] == "wait"
        missing = await client.get(f"/api/tasks/{uuid.uuid4()}/result?wait=0.1")
        assert missing.status_code == 404


async def test_a_result_over_the_limit_fails_the_task_for_good(
    database_url: str, pool: asyncpg.Pool, tq: TaskQueue
) -> None:
    task = await tq.enqueue("sleep", {"seconds": 0}, max_retries=3)
    async with running_worker(database_url, max_result_bytes=5):
        with pytest.raises(TaskFailed) as failed:
            await tq.result(task.id, timeout=30)
    assert failed.value.task.status.value == "failed"
    # (The in-process test client holds the event loop while it waits: the
    # worker could not run meanwhile, so the API is asked afterwards.)
    async with api_client(database_url) as client:
        answer = await client.get(f"/api/tasks/{task.id}/result?wait=1")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "failed" and body["attempts"] == 1
    assert "result too large" in body["error"] and "TASKQUEUE_MAX_RESULT_BYTES" in body["error"]
    detail = await pool.fetchval(
        "SELECT detail->>'failure' FROM taskqueue.task_events"
        " WHERE task_id = $1 AND event_type = 'task_failed'",
        task.id,
    )
    assert detail == "result_too_large"


async def test_python_waits_for_a_result_on_its_own_listen(
    database_url: str, pool: asyncpg.Pool
) -> None:
    async with await TaskQueue.connect(database_url) as tq:
        task = await tq.enqueue("sleep", {"seconds": 0})
        with pytest.raises(TimeoutError):
            await tq.result(task.id, timeout=0.1)
        assert (await tq.get(task.id)).status.value == "queued"
        async with running_worker(database_url):
            assert await tq.result(task.id, timeout=30) == {"slept": 0.0}
        done = await tq.wait(task.id, timeout=0)
        assert done.status.value == "succeeded" and done.result == {"slept": 0.0}
