"""taskqueue.schedules.manager (tq.schedules and its flat names): what the
Python API says of bad definitions and conflicts."""

from __future__ import annotations

import pytest

from taskqueue.client import TaskQueue
from taskqueue.schedules import (
    InvalidSchedule,
    ScheduleConflict,
    ScheduleNotFound,
)


async def test_the_python_api_names_the_field_and_the_conflict(tq: TaskQueue) -> None:
    with pytest.raises(InvalidSchedule) as bad_zone:
        await tq.add_schedule("x", cron="@daily", timezone="Moon/Base", type="noop")
    assert bad_zone.value.field == "timezone"
    with pytest.raises(InvalidSchedule) as bad_policy:
        await tq.add_schedule("x", cron="@daily", type="noop", catch_up="sometimes")
    assert bad_policy.value.field == "catch_up"
    await tq.add_schedule("x", cron="@daily", type="noop")
    with pytest.raises(ScheduleConflict, match="already exists"):
        await tq.add_schedule("x", every_seconds=5, type="noop")
    with pytest.raises(InvalidSchedule) as renamed:
        await tq.update_schedule("x", name="y")
    assert renamed.value.field == "name"
    with pytest.raises(ScheduleNotFound):
        await tq.update_schedule("missing", priority=1)
    with pytest.raises(ScheduleNotFound):
        await tq.get_schedule("bad\x00name")
    assert await tq.list(schedule="bad\x00name") == []
    changed = await tq.update_schedule("x", every_seconds=5, priority=9)
    assert (changed.cron, changed.every_seconds, changed.priority) == (None, 5, 9)
