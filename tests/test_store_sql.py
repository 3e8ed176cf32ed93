"""The query loader (taskqueue/store/_sql.py): every statement loads, and a
`-- include: _x.sql` line is replaced by the fragment's text, which is then
what runs."""

from __future__ import annotations

import re
import uuid
from importlib import resources

import asyncpg
import pytest

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask, Status, TaskFilter
from taskqueue.store import _sql

INCLUDE = re.compile(r"^\s*-- include:", re.MULTILINE)


def query_files() -> list[str]:
    return sorted(
        path.name[: -len(".sql")]
        for path in resources.files("taskqueue.queries").iterdir()
        if path.name.endswith(".sql") and not path.name.startswith("_")
    )


def body(fragment: str) -> list[str]:
    """A fragment's SQL lines (its comment header left out), stripped."""
    lines = _sql.fragment(fragment).splitlines()
    return [line.strip() for line in lines if not line.startswith("--")]


def test_every_statement_loads_with_its_includes_expanded() -> None:
    names = query_files()
    assert "claim_tasks" in names and "queue_states" in names
    for name in names:
        assert not INCLUDE.search(_sql.statement(name)), name


@pytest.mark.parametrize(
    ("fragment", "users"),
    [
        ("_bulk_match.sql", ["cancel_tasks", "retry_tasks", "delete_tasks"]),
        ("_claim_tail.sql", ["claim_tasks", "claim_governed_tasks"]),
        ("_live_worker.sql", ["list_workers", "queue_states"]),
        (
            "_task_ended.sql",
            [
                "complete_tasks_with_callbacks",
                "cancel_task",
                "cancel_tasks",
                "rescue_expired",
                "expire_tasks",
            ],
        ),
        (
            "_ended_notices.sql",
            [
                "complete_tasks",
                "complete_tasks_with_callbacks",
                "cancel_task",
                "cancel_tasks",
                "rescue_expired",
                "expire_tasks",
            ],
        ),
        ("_complete_outcomes.sql", ["complete_tasks", "complete_tasks_with_callbacks"]),
    ],
)
def test_a_fragment_is_spliced_in_where_it_is_named(fragment: str, users: list[str]) -> None:
    for name in users:
        raw = resources.files("taskqueue.queries").joinpath(f"{name}.sql").read_text()
        assert f"-- include: {fragment}" in raw
        expanded = [line.strip() for line in _sql.statement(name).splitlines()]
        lines = body(fragment)
        start = expanded.index(lines[0])
        assert expanded[start : start + len(lines)] == lines, name


def test_the_spliced_lines_keep_the_include_lines_indent(monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"s.sql": "SELECT\n    -- include: _f.sql\nFROM t;\n", "_f.sql": "a,\n\nb\n"}
    monkeypatch.setattr(_sql, "_read", files.__getitem__)
    monkeypatch.setattr(_sql, "fragment", _sql.fragment.__wrapped__)
    assert _sql.query.__wrapped__("s") == "SELECT\n    a,\n\n    b\nFROM t;\n"


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"s.sql": "-- include: _missing.sql\n"}, "no query fragment '_missing.sql'"),
        ({"s.sql": "-- include: other.sql\n"}, "an include names a fragment"),
        (
            {"s.sql": "-- include: _a.sql\n", "_a.sql": "x\n-- include: _b.sql\n"},
            "cannot nest",
        ),
    ],
)
def test_a_bad_include_fails_when_the_statement_loads(
    monkeypatch: pytest.MonkeyPatch, files: dict[str, str], problem: str
) -> None:
    def read(filename: str) -> str:
        if filename not in files:
            raise FileNotFoundError(filename)
        return files[filename]

    monkeypatch.setattr(_sql, "_read", read)
    monkeypatch.setattr(_sql, "fragment", _sql.fragment.__wrapped__)
    with pytest.raises(ValueError, match=re.escape(problem)):
        _sql.statement.__wrapped__("s")


async def test_the_expanded_bulk_statements_run(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    # Each bulk statement, sent as query() expands it, finds its chunk
    # through the shared filter.
    tasks = await tq.enqueue_many([NewTask(type="noop", queue="bulk") for _ in range(3)])
    ids = sorted(t.id for t in tasks)
    where = TaskFilter(queue="bulk")

    async def act(action: str) -> tuple[int, int, uuid.UUID | None]:
        result = await store.bulk_action(
            pool, action, ids=None, where=where, after=None, limit=2, actor="t", asked={}
        )
        return result.matched, result.changed, result.next

    assert await act("cancel") == (2, 2, ids[1])
    assert await act("retry") == (2, 2, ids[1])
    claimed = await store.claim_tasks(pool, ["bulk"], 1, "w", 30, types=["noop"])
    assert len(claimed) == 1
    statuses = {t.id: t.status for t in await store.list_tasks(pool, queue="bulk")}
    assert sorted(statuses.values()) == [Status.QUEUED, Status.QUEUED, Status.RUNNING]
    assert (await act("delete"))[:2] == (2, 0)  # queued and running tasks are never deleted
