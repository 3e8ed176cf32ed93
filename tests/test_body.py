"""The duplicate-key rule of request bodies: clean bodies are proved clean
by the fast path, a repeated key is found wherever it hides (deep, among
colons inside strings, behind \\u escapes), and it is named in the 422."""

from __future__ import annotations

import json

import pytest

from taskqueue.http.body import _no_repeated_key, refuse_duplicate_keys
from taskqueue.http.errors import ApiError


def separators(raw: bytes) -> int:
    return raw.count(b":")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type": "noop", "payload": {"url": "https://x:8080/a:b", "t": "12:30"}}',
        json.dumps(
            {"tasks": [{"type": "noop", "payload": {"i": i}} for i in range(1000)]}
        ).encode(),
        b'{"a": [{"b": 1, "c": {"d": "e:f"}}, {"b": 2}], "g": 1.5e300, "h": null}',
    ],
)
def test_clean_bodies_are_proved_clean_by_the_fast_path(raw: bytes) -> None:
    assert _no_repeated_key(raw, separators(raw))
    refuse_duplicate_keys(raw)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (b'{"type": "noop", "type": "x"}', "type"),
        (b'{"tasks": [{"type": "noop"}, {"type": "a", "payload": {"k": 1, "k": 2}}]}', "k"),
        (b'{"type": "noop", "payload": {"s": "a:b:c", "s": "d"}}', "s"),
        # An escaped colon would put back the one a dropped key took.
        (b'{"type": "noop", "payload": {"x": "\\u003a", "x": 1}}', "x"),
    ],
)
def test_a_repeated_key_is_refused_and_named(raw: bytes, key: str) -> None:
    assert not _no_repeated_key(raw, separators(raw))
    with pytest.raises(ApiError) as refused:
        refuse_duplicate_keys(raw)
    assert (refused.value.body.status, refused.value.body.field) == (422, key)
    assert "given twice" in refused.value.body.message
