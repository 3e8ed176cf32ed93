from datetime import timedelta

import pytest

from taskqueue.config import ConfigError, Settings
from taskqueue.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("3s", 3),
        ("90s", 90),
        ("15m", 900),
        ("1.5h", 5400),
        ("12h", 43200),
        ("7d", 604800),
        ("2w", 1209600),
        (" 1D ", 86400),
    ],
)
def test_parse_duration_reads_each_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "7", "d", "0s", "-1d", "1y", "1d2h", "1e3s", "101000w"])
def test_parse_duration_refuses_what_is_not_a_positive_duration(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for text in ("3s", "90s", "15m", "12h", "1d", "30d", "2w"):
        assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)
    assert format_duration(timedelta(days=7)) == "1w"
    assert format_duration(timedelta(seconds=1.5)) == "1.5s"


def test_retention_settings_default_and_name_the_variable() -> None:
    retention = Settings().retention
    assert (retention.succeeded, retention.failed, retention.cancelled, retention.events) == (
        timedelta(days=1),
        timedelta(days=14),
        timedelta(days=7),
        timedelta(days=30),
    )
    assert Settings.from_env({"TASKQUEUE_RETAIN_FAILED": "3s"}).retention.failed == timedelta(
        seconds=3
    )
    with pytest.raises(ConfigError, match="TASKQUEUE_RETAIN_EVENTS"):
        Settings.from_env({"TASKQUEUE_RETAIN_EVENTS": "soon"})
