from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import msgspec
import pytest

from taskqueue.client import TaskQueue
from taskqueue.errors import InvalidTask, TaskNotFound, TaskStateConflict, UnknownTaskType
from taskqueue.models import NewTask, Status
from taskqueue.registry import Registry, TaskContext, load_registry
from taskqueue.store.bulk_copy import COPY_MIN_ROWS
from tests.helpers import event_types


class EmailPayload(msgspec.Struct, forbid_unknown_fields=True):
    to: str
    subject: str = "hello"


def email_registry() -> Registry:
    registry = Registry()

    @registry.task("send_email", payload=EmailPayload, max_retries=7, queue="mail", priority=3)
    async def send_email(payload: EmailPayload, ctx: TaskContext) -> None:
        pass

    combined = load_registry([])
    combined.include(registry)
    return combined


async def test_enqueue_commits_the_row_and_its_queued_event(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    task = await tq.enqueue("noop", {"n": 1}, name="first")
    assert task.status is Status.QUEUED
    assert (task.queue, task.priority, task.max_retries, task.attempts) == ("default", 0, 3, 0)
    stored = await tq.get(task.id)
    assert stored.payload == {"n": 1}
    assert stored.name == "first"
    assert stored.run_at == task.run_at
    assert await event_types(pool, task.id) == ["task_queued"]


async def test_handler_defaults_apply_and_explicit_values_win(pool: asyncpg.Pool) -> None:
    tq = TaskQueue(pool, email_registry())
    by_default = await tq.enqueue("send_email", {"to": "a@example.com"})
    assert (by_default.queue, by_default.priority, by_default.max_retries) == ("mail", 3, 7)
    assert by_default.payload == {"to": "a@example.com", "subject": "hello"}
    explicit = await tq.enqueue(
        "send_email", {"to": "b@example.com"}, queue="urgent", priority=9, max_retries=0
    )
    assert (explicit.queue, explicit.priority, explicit.max_retries) == ("urgent", 9, 0)


async def test_payload_that_does_not_fit_its_type_names_the_field(pool: asyncpg.Pool) -> None:
    tq = TaskQueue(pool, email_registry())
    with pytest.raises(InvalidTask) as missing:
        await tq.enqueue("send_email", {"subject": "no recipient"})
    assert missing.value.field == "payload.to"
    with pytest.raises(InvalidTask) as wrong_type:
        await tq.enqueue("send_email", {"to": 42})
    assert wrong_type.value.field == "payload.to"
    assert "Expected `str`" in wrong_type.value.message
    with pytest.raises(InvalidTask) as unknown_field:
        await tq.enqueue("send_email", {"to": "x@example.com", "cc": "y"})
    assert "cc" in str(unknown_field.value)
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == 0


async def test_unknown_type_lists_the_known_ones(tq: TaskQueue) -> None:
    with pytest.raises(UnknownTaskType) as info:
        await tq.enqueue("send_fax", {})
    assert info.value.field == "type"
    assert "fail, noop, sleep, taskqueue.callback, webhook" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"priority": 5000}, "priority"),
        ({"max_retries": -1}, "max_retries"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"name": "x" * 201}, "name"),
        ({"queue": "a,b"}, "queue"),
        ({"delay": -1}, "delay"),
        ({"run_at": datetime(2030, 1, 1)}, "run_at"),
        ({"idempotency_key": ""}, "idempotency_key"),
    ],
)
async def test_out_of_bounds_fields_are_rejected_by_name(
    tq: TaskQueue, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidTask) as info:
        await tq.enqueue("noop", {}, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


async def test_enqueue_many_below_the_copy_size_is_one_statement(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    statements: list[str] = []
    size = COPY_MIN_ROWS - 1  # larger batches go by COPY (tests/test_bulk_copy.py)
    async with pool.acquire() as conn:
        conn.add_query_logger(lambda record: statements.append(record.query))
        tasks = await tq.enqueue_many(
            [NewTask(type="noop", payload={"i": i}, priority=i % 3) for i in range(size)],
            connection=conn,
        )
    # asyncpg's own type introspection aside, one statement touched our tables.
    ours = [q for q in statements if "taskqueue." in q]
    assert len(ours) == 1
    assert "taskqueue.write_enqueue_tasks(" in ours[0]  # the write-path function
    assert len({t.id for t in tasks}) == size
    assert [t.payload["i"] for t in tasks] == list(range(size))
    counts = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM taskqueue.tasks) AS tasks,"
        " (SELECT count(*) FROM taskqueue.task_events WHERE event_type = 'task_queued') AS events"
    )
    assert counts is not None
    assert (counts["tasks"], counts["events"]) == (size, size)


async def test_enqueue_many_names_the_bad_task(tq: TaskQueue) -> None:
    with pytest.raises(InvalidTask) as info:
        await tq.enqueue_many([NewTask(type="noop"), NewTask(type="noop", priority=10**6)])
    assert info.value.field == "tasks[1].priority"


async def test_idempotency_key_returns_the_existing_task(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    first = await tq.submit([NewTask(type="noop", idempotency_key="order-42")])
    again = await tq.submit(
        [NewTask(type="noop", payload={"other": 1}, idempotency_key="order-42")]
    )
    assert first[0].created and not again[0].created
    assert again[0].task.id == first[0].task.id
    assert again[0].task.payload == {}
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == 1
    assert await event_types(pool, first[0].task.id) == ["task_queued"]


async def test_concurrent_identical_keys_make_one_task(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    results = await asyncio.gather(
        *(tq.submit([NewTask(type="noop", idempotency_key="same")]) for _ in range(30))
    )
    ids = {r[0].task.id for r in results}
    assert len(ids) == 1
    assert sum(r[0].created for r in results) == 1
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == 1


async def test_enqueue_joins_the_callers_transaction(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                rolled_back = await tq.enqueue("noop", {}, connection=conn)
                raise RuntimeError("the caller's work failed")
        async with conn.transaction():
            committed = await tq.enqueue("noop", {}, connection=conn)
    with pytest.raises(TaskNotFound):
        await tq.get(rolled_back.id)
    assert await event_types(pool, rolled_back.id) == []
    assert (await tq.get(committed.id)).status is Status.QUEUED
    assert await event_types(pool, committed.id) == ["task_queued"]


async def test_run_at_and_delay_use_the_database_clock(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    at = datetime.now(UTC) + timedelta(hours=2)
    scheduled = await tq.enqueue("noop", run_at=at)
    assert scheduled.run_at == at
    delayed = await tq.enqueue("noop", delay=3600)
    db_now = await pool.fetchval("SELECT now()")
    assert timedelta(minutes=59) < delayed.run_at - db_now <= timedelta(hours=1)


async def test_returned_tasks_equal_the_committed_rows(tq: TaskQueue) -> None:
    # The client builds returned tasks from what it sent and the statement's
    # now(); they must match the rows exactly, delays and time zones included.
    plus_two = timezone(timedelta(hours=2))
    new = [
        NewTask(type="noop", payload={"i": 1}),
        NewTask(type="noop", delay_seconds=1.2345678, name="delayed"),
        NewTask(type="noop", run_at=datetime(2030, 1, 2, 3, 4, 5, 6789, tzinfo=plus_two)),
        NewTask(type="noop", delay_seconds=0.0000005, idempotency_key="k", priority=-3),
    ]
    returned = [*await tq.enqueue_many(new), await tq.enqueue("noop", delay=86400.5)]
    returned.append(await tq.enqueue("noop", run_at=datetime(2020, 5, 6, tzinfo=plus_two)))
    for task in returned:
        assert task == await tq.get(task.id)
    assert returned[2].run_at.utcoffset() == timedelta(0)


async def test_cancel_only_queued_tasks(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    task = await tq.enqueue("noop")
    cancelled = await tq.cancel(task.id)
    assert cancelled.status is Status.CANCELLED
    assert cancelled.completed_at is not None
    assert await event_types(pool, task.id) == ["task_queued", "task_cancelled"]
    with pytest.raises(TaskStateConflict, match="it is cancelled"):
        await tq.cancel(task.id)
    with pytest.raises(TaskNotFound):
        await tq.cancel(uuid.uuid4())


async def test_retry_requeues_failed_and_cancelled_tasks(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    task = await tq.enqueue("noop")
    with pytest.raises(TaskStateConflict, match="only failed or cancelled"):
        await tq.retry(task.id)
    await tq.cancel(task.id)
    requeued = await tq.retry(task.id)
    assert requeued.status is Status.QUEUED
    assert requeued.completed_at is None
    assert await event_types(pool, task.id) == ["task_queued", "task_cancelled", "task_requeued"]


async def test_list_filters_and_pages_without_gaps_or_repeats(tq: TaskQueue) -> None:
    noops = await tq.enqueue_many([NewTask(type="noop") for _ in range(25)])
    await tq.enqueue_many([NewTask(type="sleep", queue="slow") for _ in range(5)])
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = await tq.list(type="noop", limit=7, cursor=cursor)
        if not page:
            break
        seen.extend(t.id for t in page)
        cursor = page[-1].id
        # New tasks arriving mid-way sort before the cursor: no effect on later pages.
        await tq.enqueue("noop")
    assert set(seen) >= {t.id for t in noops}
    assert len(seen) == len(set(seen))
    assert {t.queue for t in await tq.list(queue="slow")} == {"slow"}
    assert len(await tq.list(status="queued", type="sleep")) == 5
    with pytest.raises(InvalidTask):
        await tq.list(limit=0)


async def test_history_of_an_unknown_task_is_not_found(tq: TaskQueue) -> None:
    with pytest.raises(TaskNotFound):
        await tq.history(uuid.uuid4())


async def test_stats_count_per_queue(tq: TaskQueue) -> None:
    await tq.enqueue_many([NewTask(type="noop") for _ in range(3)])
    doomed = await tq.enqueue("noop", queue="other")
    await tq.cancel(doomed.id)
    stats = await tq.stats()
    assert (stats.total_tasks, stats.queued_tasks, stats.cancelled_tasks) == (4, 3, 1)
    assert [(q.queue, q.total_tasks) for q in stats.queues] == [("default", 3), ("other", 1)]


# -- strictness: every bad input is an InvalidTask naming the field ---------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"priority": 1.5}, "priority"),
        ({"priority": True}, "priority"),
        ({"priority": "5"}, "priority"),
        ({"max_retries": 2.7}, "max_retries"),
        ({"max_retries": False}, "max_retries"),
        ({"timeout_seconds": True}, "timeout_seconds"),
        ({"timeout_seconds": "30"}, "timeout_seconds"),
        ({"timeout_seconds": float("nan")}, "timeout_seconds"),
        ({"delay": True}, "delay"),
        ({"delay": float("inf")}, "delay"),
        ({"name": 5}, "name"),
        ({"name": "bad\x00"}, "name"),
        ({"name": "evil\u202etxt.exe"}, "name"),
        ({"queue": "q\x00"}, "queue"),
        ({"queue": "two words"}, "queue"),
        ({"queue": "\x1b[31mred"}, "queue"),
        ({"queue": "zero\u200bwidth"}, "queue"),
        ({"queue": ""}, "queue"),
        ({"queue": 7}, "queue"),
        ({"idempotency_key": "k\x00"}, "idempotency_key"),
        ({"idempotency_key": 42}, "idempotency_key"),
        ({"run_at": "2030-01-01T00:00:00Z"}, "run_at"),
        (
            {"run_at": datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14)))},
            "run_at",
        ),
        ({"run_at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))}, "run_at"),
    ],
)
async def test_wrong_types_and_unprintable_text_are_refused_by_name(
    tq: TaskQueue, pool: asyncpg.Pool, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidTask) as info:
        await tq.enqueue("noop", {}, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == 0


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"to": "bad\x00"}, "NUL"),
        ({"bad\x00key": 1}, "NUL"),
        ({"nested": [{"deeper": "x\x00"}]}, "NUL"),
        ({"lone": "\ud800"}, "lone surrogates"),
        ({"when": object()}, "not JSON-serialisable"),
        ({"big": 10**5000}, "not JSON-serialisable"),
    ],
)
async def test_payloads_postgresql_would_refuse_are_invalid_before_any_statement(
    tq: TaskQueue, pool: asyncpg.Pool, payload: object, message: str
) -> None:
    with pytest.raises(InvalidTask) as info:
        await tq.enqueue("noop", payload)
    assert info.value.field == "payload"
    assert message in info.value.message
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == 0


async def test_nesting_is_capped_and_cycles_are_refused(tq: TaskQueue) -> None:
    deep: list[object] = []
    inner = deep
    for _ in range(2000):
        inner.append([])
        inner = inner[0]  # type: ignore[assignment]
    with pytest.raises(InvalidTask, match="nested deeper than 64 levels"):
        await tq.enqueue("noop", {"deep": deep})
    loop: dict[str, object] = {}
    loop["self"] = loop
    with pytest.raises(InvalidTask, match="contains itself"):
        await tq.enqueue("noop", loop)
    just_so: object = {}
    for _ in range(62):  # with the payload and the innermost object: 64 levels
        just_so = [just_so]
    assert (await tq.enqueue("noop", {"ok": just_so})).status is Status.QUEUED
    with pytest.raises(InvalidTask, match="nested deeper than 64 levels"):
        await tq.enqueue("noop", {"ok": [just_so]})


async def test_a_bad_task_in_a_batch_rejects_the_batch_naming_it(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    with pytest.raises(InvalidTask) as info:
        await tq.enqueue_many([NewTask(type="noop"), NewTask(type="noop", name="x\x00")])
    assert info.value.field == "tasks[1].name"
    with pytest.raises(InvalidTask) as not_a_task:
        await tq.enqueue_many([NewTask(type="noop"), {"type": "noop"}])  # type: ignore[list-item]
    assert not_a_task.value.field == "tasks[1].task"
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == 0


async def test_payloads_round_trip_exactly(tq: TaskQueue) -> None:
    # What enqueue returns is what was stored: JSON, as get() reads it back.
    payload = {
        "set": {3, 1, 2},
        "when": datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
        "tuple": (1, "a"),
        1: "int key",
        "uuid": uuid.UUID("01234567-89ab-cdef-0123-456789abcdef"),
        "inf": float("inf"),
        "big": 10**30,
        "nested": {"x": [1.5, None, True]},
    }
    returned = await tq.enqueue("noop", payload)
    stored = await tq.get(returned.id)
    assert returned == stored
    assert sorted(stored.payload["set"]) == [1, 2, 3]
    assert stored.payload["when"] == "2030-01-02T03:04:05Z"
    assert stored.payload["tuple"] == [1, "a"]
    assert stored.payload["1"] == "int key"
    assert stored.payload["inf"] is None
    many = await tq.enqueue_many([NewTask(type="noop", payload={"t": (i,)}) for i in range(3)])
    assert [t.payload for t in many] == [(await tq.get(t.id)).payload for t in many]


async def test_typed_payloads_round_trip_with_their_defaults(pool: asyncpg.Pool) -> None:
    tq = TaskQueue(pool, email_registry())
    returned = await tq.enqueue("send_email", {"to": "a@example.com"})
    assert returned == await tq.get(returned.id)
    assert returned.payload == {"to": "a@example.com", "subject": "hello"}


async def test_run_at_in_the_past_is_stored_as_now(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    for past in (datetime(1970, 1, 1, tzinfo=UTC), datetime.now(UTC) - timedelta(seconds=1)):
        task = await tq.enqueue("noop", run_at=past)
        assert task.run_at == task.created_at
        assert task == await tq.get(task.id)
    stored = await pool.fetchval("SELECT min(run_at) FROM taskqueue.tasks")
    assert stored.year >= 2020  # neither 1970 nor -infinity


async def test_malformed_ids_and_filters_raise_taskqueue_errors(tq: TaskQueue) -> None:
    task = await tq.enqueue("noop")
    assert (await tq.get(str(task.id))).id == task.id
    for call in (tq.get, tq.history, tq.cancel, tq.retry):
        with pytest.raises(TaskNotFound):
            await call("not-a-uuid")
        with pytest.raises(InvalidTask) as info:
            await call(123)  # type: ignore[arg-type]
        assert info.value.field == "id"
    bad_filters: list[tuple[dict[str, object], str]] = [
        ({"status": "bogus"}, "status"),
        ({"queue": "\x00"}, "queue"),
        ({"type": "\x00abc"}, "type"),
        ({"created_after": datetime(2020, 1, 1)}, "created_after"),
        ({"created_before": datetime(1, 1, 1, tzinfo=UTC)}, "created_before"),
        ({"cursor": "zzz"}, "cursor"),
        ({"limit": 10.0}, "limit"),
        ({"limit": True}, "limit"),
    ]
    for kwargs, field in bad_filters:
        with pytest.raises(InvalidTask) as info:
            await tq.list(**kwargs)  # type: ignore[arg-type]
        assert info.value.field == field, kwargs
    assert [t.id for t in await tq.list(status="queued", cursor=str(uuid.uuid4()))] in (
        [],
        [task.id],
    )


async def test_a_task_carries_its_tenant_on_every_insert_path(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    one = await tq.enqueue("noop", tenant="acme")
    few = await tq.enqueue_many([NewTask(type="noop", tenant="acme", delay_seconds=60)] * 3)
    copied = await tq.enqueue_many([NewTask(type="noop", tenant="acme")] * COPY_MIN_ROWS)
    plain = await tq.enqueue("noop")
    assert one.tenant == "acme" and (await tq.get(one.id)).tenant == "acme"
    assert {t.tenant for t in few + copied} == {"acme"}
    assert plain.tenant is None and (await tq.get(plain.id)).tenant is None
    stored = await pool.fetch("SELECT tenant, count(*) FROM taskqueue.tasks GROUP BY tenant")
    assert {r["tenant"]: r["count"] for r in stored} == {"acme": 4 + COPY_MIN_ROWS, None: 1}


@pytest.mark.parametrize("tenant", ["", "a b", "x/y", "é", "a" * 65, 7])
async def test_a_tenant_name_follows_the_queue_name_rule(tq: TaskQueue, tenant: object) -> None:
    with pytest.raises(InvalidTask) as raised:
        await tq.enqueue("noop", tenant=tenant)  # type: ignore[arg-type]
    assert raised.value.field == "tenant"


async def test_the_database_refuses_a_malformed_tenant(pool: asyncpg.Pool) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(
            "INSERT INTO taskqueue.tasks (id, queue, type, tenant)"
            " VALUES (gen_random_uuid(), 'default', 'noop', 'a b')"
        )
