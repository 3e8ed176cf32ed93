"""What a task may hold, one rule for the Python API and the REST API alike.

Everything PostgreSQL would refuse is refused here, before any statement, so
that one producer's bad value can never fail a statement it shares with
others (the REST API groups concurrent requests into one INSERT).

The checks run per task at thousands of tasks a second, so the JSON ones work
on the encoded bytes, where a C-speed count or search settles the common case
and only a suspicious document gets a closer look."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Final

import msgspec

MAX_PAYLOAD_DEPTH: Final = 64
"""Arrays and objects nested in a payload, the payload itself counting as one."""

TEXT_RULE: Final = (
    "printable characters only: no control or format characters "
    "(NUL, newlines, bidi overrides, zero-width characters) and no spaces other than ' '"
)
QUEUE_RULE: Final = (
    "ASCII letters, digits and . _ : - only, starting with a letter, digit or _ "
    "(a queue's name is a path segment of the API and the dashboard: no '/', "
    "spaces, commas or control characters)"
)
QUEUE_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*")
"""Every queue name matches it whole (with a length bound): fit for a URL
path segment unescaped, a comma-separated list and a log line."""
TENANT_PATTERN: Final = "^" + QUEUE_NAME.pattern + "$"
"""A tenant's name follows the queue names' rule (a query parameter's pattern)."""

# Datetimes given as filters: a zone and a year PostgreSQL and Python agree on.
EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(9999, 1, 1, tzinfo=UTC)


def text_problem(value: object, *, max_length: int, min_length: int = 0) -> str | None:
    """Why ``value`` is no acceptable name, type or key, or None.

    ``str.isprintable`` is False for every character in Unicode's Other and
    Separator categories except the ASCII space: Cc (NUL, newlines, ANSI
    escapes), Cf (bidi overrides, zero-width spaces and joiners), Cs (lone
    surrogates), Co, Cn, Zl, Zp and Zs (non-breaking spaces)."""
    if type(value) is not str:
        return f"must be a string, not {type(value).__name__}"
    if min_length <= len(value) <= max_length and value.isprintable():
        return None
    return f"{_length_text(min_length, max_length)}, {TEXT_RULE}"


def queue_problem(value: object, *, max_length: int) -> str | None:
    """One rule for queue names everywhere (enqueue, schedules, pause and
    limits, filters, TASKQUEUE_QUEUES): they travel as URL path segments
    (``/api/queues/{name}/pause``, ``/queues/{name}``), comma-separated and
    in log lines, so only characters none of those need to escape."""
    if type(value) is not str:
        return f"must be a string, not {type(value).__name__}"
    if len(value) <= max_length and QUEUE_NAME.fullmatch(value):
        return None
    return f"{_length_text(1, max_length)}, {QUEUE_RULE}"


MEMBER_KEY_RULE: Final = (
    "must not end in '/' and digits: a batch sent with Idempotency-Key K gives its "
    "task i the key K/i, and no other key may look like one"
)
_MEMBER_KEY_SUFFIX: Final = re.compile(r"/[0-9]+\Z")


def is_member_key(key: str) -> bool:
    """Whether ``key`` has the shape of a batch member's key (``K/3``)."""
    return "/" in key and _MEMBER_KEY_SUFFIX.search(key) is not None


def key_problem(value: object, *, max_length: int) -> str | None:
    """Why ``value`` is no idempotency key a producer may give, or None."""
    problem = text_problem(value, max_length=max_length, min_length=1)
    if problem is None and is_member_key(value):  # type: ignore[arg-type]
        return MEMBER_KEY_RULE
    return problem


def _length_text(min_length: int, max_length: int) -> str:
    if min_length:
        return f"{min_length} to {max_length} characters"
    return f"at most {max_length} characters"


# -- JSON ------------------------------------------------------------------------

_NUL_ESCAPE: Final = b"\\u0000"
# A JSON string: matched whole, so that brackets inside strings are skipped;
# possessive quantifiers keep long strings linear.
_STRING: Final = re.compile(rb'"(?:[^"\\]++|\\.)*+"')
# A string (capturing an object key: a string followed by a colon), or one bracket.
_KEYED_TOKEN: Final = re.compile(rb'"((?:[^"\\]++|\\.)*+)"\s*+(:)?|[\[\]{}]')
_OPEN: Final = frozenset(b"[{")
_OPEN_ARRAY: Final = ord("[")
# bytes.translate: objects' braces become brackets, everything else goes.
_AS_BRACKETS: Final = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS: Final = bytes(c for c in range(256) if c not in b"[]{}")


def json_problem(encoded: bytes, max_depth: int = MAX_PAYLOAD_DEPTH) -> str | None:
    """Why PostgreSQL (or this queue) would refuse this JSON document, or None.

    ``encoded`` comes from msgspec, which writes NUL as ``\\u0000`` and a
    literal backslash as ``\\\\``; both checks are one C-speed pass over the
    bytes in the common case."""
    if _NUL_ESCAPE in encoded and _has_nul(encoded):
        return "strings and keys must not contain NUL (\\u0000): PostgreSQL cannot store it"
    if encoded.count(b"[") + encoded.count(b"{") > max_depth and (
        nesting_depth(encoded, stop_above=max_depth) > max_depth
    ):
        return f"nested deeper than {max_depth} levels of arrays and objects"
    return None


def _has_nul(encoded: bytes) -> bool:
    # \u0000 is an escape only when its backslash is not itself escaped:
    # an even number of backslashes stands before it.
    start = encoded.find(_NUL_ESCAPE)
    while start != -1:
        backslashes = 0
        while start - backslashes - 1 >= 0 and encoded[start - backslashes - 1] == 0x5C:
            backslashes += 1
        if backslashes % 2 == 0:
            return True
        start = encoded.find(_NUL_ESCAPE, start + 1)
    return False


def nesting_depth(document: bytes, stop_above: int | None = None) -> int:
    """How deep arrays and objects nest in a JSON document (0 for a scalar);
    counting stops once past ``stop_above``.

    All in C-speed passes: strings dropped, the brackets kept, then each pass
    removes every innermost ``[]`` pair; a container goes in the pass equal
    to its height, so the number of passes is the depth."""
    brackets = _STRING.sub(b"", document).translate(_AS_BRACKETS, _NOT_BRACKETS)
    depth = 0
    while brackets:
        inner_removed = brackets.replace(b"[]", b"")
        if len(inner_removed) == len(brackets):
            break  # unbalanced: not JSON, and not ours to judge
        brackets = inner_removed
        depth += 1
        if stop_above is not None and depth > stop_above:
            break
    return depth


def too_deep_at(document: bytes, max_depth: int, name_levels: int) -> str | None:
    """For a request body: where arrays and objects first nest deeper than
    ``max_depth``, named by its first ``name_levels`` steps ("payload",
    "tasks[3].payload"), or None when they never do.

    Runs before the body is decoded, since decoding a deep enough document
    exhausts the interpreter's stack; a count settles the common case, and
    C-speed passes most others."""
    if document.count(b"[") + document.count(b"{") <= max_depth or (
        nesting_depth(document, stop_above=max_depth) <= max_depth
    ):
        return None
    # Too deep: walk it token by token (slower) to name where.
    # Per open container: is it an array, and the key or index reached in it.
    arrays: list[bool] = []
    steps: list[str | int] = []
    for match in _KEYED_TOKEN.finditer(document):
        first = match.group()[0]
        if first == 0x22:  # a string: remember it when it is a key
            if match.group(2) is not None and steps:
                steps[-1] = _key_text(match.group(1))
            continue
        if first in _OPEN:
            if arrays and arrays[-1]:
                steps[-1] = int(steps[-1]) + 1
            arrays.append(first == _OPEN_ARRAY)
            steps.append(-1 if first == _OPEN_ARRAY else "")
            if len(arrays) > max_depth:
                return _path(arrays[:name_levels], steps[:name_levels]) or "body"
        elif arrays:
            arrays.pop()
            steps.pop()
    return None


def _key_text(raw: bytes) -> str:
    try:
        key = msgspec.json.decode(b'"' + raw + b'"')
    except msgspec.DecodeError:
        return "?"
    return key if isinstance(key, str) else "?"


def _path(arrays: list[bool], steps: list[str | int]) -> str:
    path = ""
    for is_array, step in zip(arrays, steps, strict=True):
        if is_array:
            path += f"[{step}]"
        else:
            path += f".{step}" if path else str(step)
    return path


# -- datetimes and ids -------------------------------------------------------------


def zoned_problem(value: object) -> str | None:
    """Why ``value`` is no datetime for this API, or None: it needs a zone,
    and a year both PostgreSQL and Python handle in every zone."""
    if not isinstance(value, datetime):
        return f"must be a datetime, not {type(value).__name__}"
    if value.utcoffset() is None:
        return "must include a time zone (e.g. 2030-01-01T09:00:00Z)"
    if not EARLIEST <= value < LATEST:
        return "must lie between the years 1970 and 9998"
    return None


def as_task_id(value: object) -> uuid.UUID | None:
    """A task id from a UUID or its text; None when it cannot be one."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str) and len(value) <= 64:
        try:
            return uuid.UUID(value)
        except ValueError:
            return None
    return None
