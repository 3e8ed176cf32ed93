"""taskqueue.schedules.definition: one way to define a schedule, in code or
at run time, checked when it is defined."""

from __future__ import annotations

from typing import Any

import pytest

from taskqueue.errors import InvalidSchedule
from taskqueue.models import CatchUp, NewSchedule, Overlap
from taskqueue.registry import Registry
from taskqueue.schedules import define


def test_a_definition_fills_in_what_it_leaves_out() -> None:
    new = define("digest", type="noop", cron="@daily")
    assert new == NewSchedule(name="digest", type="noop", cron="@daily")
    assert new.payload == {}
    assert (new.catch_up, new.overlap, new.timezone) == (CatchUp.LATEST, Overlap.ALLOW, "UTC")
    assert define("x", type="t", every_seconds=5, catch_up="all").catch_up is CatchUp.ALL


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cron": "@daily", "timezone": "Moon/Base"}, "timezone"),
        ({"cron": "61 * * * *"}, "cron"),
        ({}, "cron"),
        ({"cron": "@daily", "every_seconds": 5}, "every_seconds"),
        ({"cron": "@daily", "catch_up": "sometimes"}, "catch_up"),
        ({"cron": "@daily", "overlap": "never"}, "overlap"),
        ({"cron": "@daily", "colour": "red"}, "colour"),
    ],
)
def test_a_bad_definition_names_its_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSchedule) as refused:
        define("digest", type="noop", **fields)
    assert refused.value.field == field
    with pytest.raises(InvalidSchedule):
        define("bad name", type="noop", cron="@daily")


def test_code_and_run_time_definitions_are_the_same_value() -> None:
    registry = Registry()
    in_code = registry.schedule("digest", type="noop", cron="*/5 * * * *", priority=3)
    assert in_code == define("digest", type="noop", cron="*/5 * * * *", priority=3)
    assert registry.schedules() == [in_code]
