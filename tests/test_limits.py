"""taskqueue.limits: the checks of arguments that are not tasks name the
field they refuse, and let through what is within bounds."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from taskqueue.errors import InvalidArgument, InvalidSchedule
from taskqueue.limits import (
    MAX_BULK,
    MAX_LIMIT,
    MAX_PAGE_SIZE,
    check_bulk,
    check_concurrency,
    check_filter,
    check_page,
    check_rate,
    queue_name,
)
from taskqueue.models import RateLimit, Status, TaskFilter


def field_of(call: object, *args: object) -> str:
    with pytest.raises(InvalidArgument) as refused:
        call(*args)  # type: ignore[operator]
    return refused.value.field


def test_queue_names_follow_the_queue_rule() -> None:
    assert queue_name("emails") == "emails"
    for bad in ("", "a b", "a,b", "x\x00", "q" * 101):
        assert field_of(queue_name, bad) == "queue"


def test_an_empty_filter_or_an_empty_string_in_one_is_refused() -> None:
    assert field_of(check_filter, TaskFilter()) == "filter"
    assert field_of(check_filter, TaskFilter(queue="")) == "filter.queue"
    assert field_of(check_filter, TaskFilter(type="")) == "filter.type"
    assert field_of(check_filter, TaskFilter(error="")) == "filter.error"
    naive = datetime(2025, 1, 1)
    assert field_of(check_filter, TaskFilter(created_before=naive)) == "filter.created_before"
    check_filter(TaskFilter(status=Status.FAILED))


def test_a_bulk_selection_is_ids_or_a_filter_within_the_bounds() -> None:
    some = [uuid.uuid4()]
    where = TaskFilter(queue="q")
    assert field_of(check_bulk, None, None, None, 10) == "ids"
    assert field_of(check_bulk, some, where, None, 10) == "ids"
    assert field_of(check_bulk, some, None, None, MAX_BULK + 1) == "limit"
    assert field_of(check_bulk, some, None, None, True) == "limit"
    assert field_of(check_bulk, [uuid.uuid4()] * (MAX_BULK + 1), None, None, 10) == "ids"
    after = uuid.uuid4()
    assert check_bulk(some, None, after, 10) == {"limit": 10, "ids": 1, "after": str(after)}
    assert check_bulk(None, where, None, 5)["filter"]["queue"] == "q"


def test_rate_and_concurrency_limits_are_bounded_numbers() -> None:
    check_rate(RateLimit(limit=10, period_seconds=1.5))
    bad_limit = RateLimit(limit=MAX_LIMIT + 1, period_seconds=1)
    assert field_of(check_rate, bad_limit) == "rate_limit.limit"
    bad_period = RateLimit(limit=1, period_seconds=float("inf"))
    assert field_of(check_rate, bad_period) == "rate_limit.period_seconds"
    check_concurrency(None)
    check_concurrency(MAX_LIMIT)
    for bad in (0, True, 1.5, MAX_LIMIT + 1):
        assert field_of(check_concurrency, bad) == "concurrency_limit"


def test_a_page_holds_one_to_max_page_size_rows_and_the_caller_picks_the_error() -> None:
    check_page(1)
    check_page(MAX_PAGE_SIZE)
    for bad in (0, MAX_PAGE_SIZE + 1, True, "10"):
        assert field_of(check_page, bad) == "limit"
    with pytest.raises(InvalidSchedule):
        check_page(0, InvalidSchedule)
