from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec

from taskqueue.models import Status, Task
from taskqueue.store.task_rows import COPY_COLUMNS, TaskRow, copy_record, new_task

CREATED = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _row(**changes: object) -> TaskRow:
    # Every field set, each to a value no default has.
    fields: dict[str, object] = {
        "id": uuid.uuid4(),
        "queue": "mail",
        "type": "send",
        "name": "welcome",
        "payload": msgspec.Raw(b'{"to":"a@example.com"}'),
        "priority": 7,
        "max_retries": 9,
        "timeout_seconds": 12.5,
        "run_at": None,
        "delay_us": 0,
        "idempotency_key": "order-1",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "expires_at": CREATED + timedelta(hours=1),
        "ttl_us": None,
        "callback": {"url": "https://example.com/done", "events": ["succeeded"]},
        "tenant": "acme",
        "sequence_key": "customer-1",
        "sequence_on_failure": "block",
        "concurrency_key": "account-1",
    }
    fields.update(changes)
    return TaskRow(**fields)  # type: ignore[arg-type]


def test_a_new_task_takes_every_field_its_row_shares_with_task() -> None:
    row = _row()
    task = new_task(row, CREATED)
    shared = set(TaskRow.__struct_fields__) & set(Task.__struct_fields__)
    assert shared - {"run_at", "expires_at"}  # the test has something to compare
    for field in shared - {"run_at"}:
        assert getattr(task, field) == getattr(row, field), field
    assert task.status is Status.QUEUED
    assert task.run_at == task.created_at == CREATED
    assert (task.attempts, task.locked_by, task.locked_until, task.result) == (0, None, None, None)
    assert (task.started_at, task.completed_at, task.last_error) == (None, None, None)


def test_a_new_task_computes_its_times_from_the_statements_start() -> None:
    delayed = new_task(_row(delay_us=1_500_000, expires_at=None, ttl_us=60_000_000), CREATED)
    assert delayed.run_at == CREATED + timedelta(seconds=1.5)
    assert delayed.expires_at == CREATED + timedelta(seconds=60)
    at = CREATED + timedelta(days=1)
    assert new_task(_row(run_at=at), CREATED).run_at == at
    assert new_task(_row(), CREATED, Status.WAITING).status is Status.WAITING


def test_new_tasks_share_nothing_with_each_other() -> None:
    first = new_task(_row(), CREATED)
    second = new_task(_row(queue="other", tenant=None), CREATED, Status.WAITING)
    assert first is not second
    assert (first.queue, first.tenant, first.status) == ("mail", "acme", Status.QUEUED)
    first.attempts = 3  # as a caller may change what it got back
    assert new_task(_row(), CREATED).attempts == 0


def test_a_copy_record_is_the_row_in_the_copy_columns_order() -> None:
    row = _row(idempotency_key=None, sequence_key=None, sequence_on_failure=None)
    assert copy_record(row) == tuple(getattr(row, name) for name in COPY_COLUMNS)
    assert not {"run_at", "delay_us", "ttl_us"} & set(COPY_COLUMNS)
