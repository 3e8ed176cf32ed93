"""The rules a task's values follow, the same for the Python and REST APIs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from taskqueue.client import TaskQueue
from taskqueue.config import ConfigError, Settings
from taskqueue.errors import InvalidTask
from taskqueue.validation import (
    MAX_PAYLOAD_DEPTH,
    TEXT_RULE,
    as_task_id,
    json_problem,
    nesting_depth,
    queue_problem,
    text_problem,
    too_deep_at,
    zoned_problem,
)
from tests.api_helpers import api_client


@pytest.mark.parametrize(
    "text",
    [
        "bad\x00",  # NUL (Cc)
        "line\nbreak",  # Cc
        "\x1b[31mred",  # ANSI escape (Cc)
        "admin\u202eexe.txt",  # right-to-left override (Cf)
        "zero\u200bwidth",  # zero-width space (Cf)
        "join\u200d",  # zero-width joiner (Cf)
        "\ufeffbom",  # byte order mark (Cf)
        "no\u00a0break",  # non-breaking space (Zs)
        "lone\ud800",  # lone surrogate (Cs)
        "tab\there",
    ],
)
def test_the_text_rule_refuses_control_format_and_invisible_characters(text: str) -> None:
    problem = text_problem(text, max_length=100)
    assert problem is not None
    assert TEXT_RULE in problem
    assert "at most 100 characters" in problem


def test_the_text_rule_accepts_printable_text_of_any_script() -> None:
    for text in ("Welcome email", "Grüße", "письмо", "メール", "emoji 📬", "a-b_c.d/e:f", ""):
        assert text_problem(text, max_length=100) is None, text
    assert text_problem("", max_length=100, min_length=1) is not None
    assert text_problem("x" * 101, max_length=100) is not None
    assert text_problem(5, max_length=100) == "must be a string, not int"


BAD_QUEUES = (
    "a/b",
    "..",
    ".hidden",
    "a?b",
    "a#b",
    "a%2Fb",
    "two words",
    "a,b",
    " lead",
    "",
    "x" * 101,
    "q\x00",
    "caf\ufffd",
    "émails",
)


def test_queue_names_are_path_segments_as_they_are() -> None:
    for good in ("critical", "emails.eu-west:1", "_internal", "x" * 100):
        assert queue_problem(good, max_length=100) is None, good
    for bad in BAD_QUEUES:
        problem = queue_problem(bad, max_length=100)
        assert problem is not None and "ASCII letters, digits and . _ : - only" in problem, bad


def encoded(value: object) -> bytes:
    return msgspec.json.encode(value)


def test_nul_is_found_in_values_and_keys_but_not_in_an_escaped_backslash() -> None:
    assert json_problem(encoded({"a": "x\x00y"})) is not None
    assert json_problem(encoded({"k\x00": 1})) is not None
    assert json_problem(encoded(["\\\x00"])) is not None  # backslash, then NUL
    assert json_problem(encoded({"a": "\\u0000"})) is None  # the six characters, not NUL
    assert json_problem(encoded({"a": "\\\\u0000"})) is None


def test_nesting_is_measured_outside_strings() -> None:
    assert nesting_depth(b"1") == 0
    assert nesting_depth(b'{"a": [1, {"b": []}]}') == 4
    assert nesting_depth(encoded({"s": "[[[[{{{{" * 50})) == 1
    deep = b"[" * (MAX_PAYLOAD_DEPTH + 1) + b"]" * (MAX_PAYLOAD_DEPTH + 1)
    assert (
        json_problem(deep) == f"nested deeper than {MAX_PAYLOAD_DEPTH} levels of arrays and objects"
    )
    just_so = b"[" * MAX_PAYLOAD_DEPTH + b"]" * MAX_PAYLOAD_DEPTH
    assert json_problem(just_so) is None
    # many brackets, none deep: the count trips, the close look clears it
    assert json_problem(encoded([[] for _ in range(500)])) is None


def test_a_deep_body_is_named_by_the_field_that_nests() -> None:
    deep = "[" * 2000 + "]" * 2000
    single = f'{{"type": "noop", "payload": {{"a": {deep}}}}}'.encode()
    assert too_deep_at(single, MAX_PAYLOAD_DEPTH + 1, name_levels=1) == "payload"
    tasks = ", ".join(['{"type": "noop"}'] * 3 + [f'{{"payload": {{"x": {deep}}}}}'])
    batch = f'{{"tasks": [{tasks}]}}'.encode()
    assert too_deep_at(batch, MAX_PAYLOAD_DEPTH + 3, name_levels=3) == "tasks[3].payload"
    fine = encoded({"tasks": [{"payload": {"a": [[1]] * 200}}]})
    assert too_deep_at(fine, MAX_PAYLOAD_DEPTH + 3, name_levels=3) is None
    tricky = encoded({"type": "[[[[" * 100, "payload": {}})
    assert too_deep_at(tricky, MAX_PAYLOAD_DEPTH + 1, name_levels=1) is None


def test_datetimes_need_a_zone_and_a_bounded_year() -> None:
    assert zoned_problem(datetime(2030, 1, 1, tzinfo=UTC)) is None
    assert "time zone" in (zoned_problem(datetime(2030, 1, 1)) or "")
    assert "1970 and 9998" in (zoned_problem(datetime(1, 1, 1, tzinfo=UTC)) or "")
    extreme = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14)))
    assert "1970 and 9998" in (zoned_problem(extreme) or "")
    assert zoned_problem("2030-01-01") == "must be a datetime, not str"
    earliest = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))
    assert "1970 and 9998" in (zoned_problem(earliest) or "")
    assert zoned_problem(datetime(2999, 1, 1, tzinfo=UTC)) is None


def test_task_ids_from_text_or_uuid() -> None:
    made = uuid.uuid4()
    assert as_task_id(made) is made
    assert as_task_id(str(made)) == made
    assert as_task_id("not-a-uuid") is None
    assert as_task_id(123) is None


async def test_one_queue_rule_for_rest_batches_schedules_python_and_settings(
    tq: TaskQueue, database_url: str
) -> None:
    for bad in ("a/b", "..", "a?b"):
        with pytest.raises(InvalidTask) as info:
            await tq.enqueue("noop", {}, queue=bad)
        assert info.value.field == "queue"
        with pytest.raises(InvalidTask) as info:
            await tq.schedules.add("s1", type="noop", every_seconds=60, queue=bad)
        assert info.value.field == "queue"
        async with api_client(database_url) as client:
            single = await client.post("/api/tasks", json={"type": "noop", "queue": bad})
            batch = await client.post(
                "/api/tasks/batch",
                json={"tasks": [{"type": "noop"}, {"type": "noop", "queue": bad}]},
            )
            schedule = await client.post(
                "/api/schedules",
                json={"name": "s1", "type": "noop", "every_seconds": 60, "queue": bad},
            )
        assert (single.status_code, single.json()["field"]) == (422, "queue"), single.text
        assert (batch.status_code, batch.json()["field"]) == (422, "tasks[1].queue"), batch.text
        assert (schedule.status_code, schedule.json()["field"]) == (422, "queue"), schedule.text
    assert (await tq.stats()).total_tasks == 0
    with pytest.raises(ConfigError, match="TASKQUEUE_QUEUES"):
        Settings.from_env({"TASKQUEUE_QUEUES": "default,a/b"})
