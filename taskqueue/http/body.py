"""Request bodies decoded with the nesting guard and the duplicate-key rule:
the one way both surfaces turn a JSON body into a typed struct."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from taskqueue.http.errors import ApiError
from taskqueue.validation import MAX_PAYLOAD_DEPTH, too_deep_at

T = TypeVar("T")


def decode_body(decode: Callable[[bytes], T], raw: bytes, envelope: int) -> T:
    """``decode(raw)``, or a 422 naming the field when the body nests so deep
    that decoding exhausts the stack, or when an object gives a key twice.
    ``envelope``: how many levels of the body wrap its free-form JSON (1 for
    ``{"payload": ...}``, 3 for ``{"tasks": [{"payload": ...}]}``); they name
    the field. (Payloads nested deeper than MAX_PAYLOAD_DEPTH but not that
    deep are refused per task, with the same message, by
    taskqueue.enqueue.prepare; no body pays for a depth scan beforehand.)"""
    try:
        decoded = decode(raw)
    except RecursionError:
        where = too_deep_at(raw, MAX_PAYLOAD_DEPTH + envelope, name_levels=envelope) or "body"
        raise ApiError(
            422,
            "invalid_field",
            f"{where}: nested deeper than {MAX_PAYLOAD_DEPTH} levels of arrays and objects",
            where,
        ) from None
    refuse_duplicate_keys(raw)
    return decoded


_decode_generic = msgspec.json.Decoder().decode  # dicts: a repeated key keeps its last value
_encode = msgspec.json.Encoder().encode


def _no_repeated_key(raw: bytes, separators: int) -> bool:
    """True when no object of ``raw`` repeats a key. Decoded into dicts and
    encoded again, a document keeps every colon (the one after each key,
    and those inside strings) unless a repeated key was dropped with its
    value. Only a \\u escape could put a colon back (\\u003a decodes to one),
    so a body with any \\u escape is left to the full check."""
    if b"\\u" in raw:
        return False
    try:
        again = _encode(_decode_generic(raw))
    except (msgspec.DecodeError, msgspec.EncodeError, RecursionError):
        return False
    return again.count(b":") == separators


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> None:
    # Called by json's C scanner once per object; returns None so that no
    # dict is built for a document only being checked.
    if len(pairs) > 1 and len({key for key, _ in pairs}) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)


def refuse_duplicate_keys(raw: bytes) -> None:
    """A 422 when an object of the (valid) JSON body gives a key twice:
    msgspec, like most parsers, would quietly keep the last, so a proxy or
    a signature check upstream may have read another value than this API.
    A body with fewer than two keys cannot have one. Most bodies are proved
    clean at C speed by _no_repeated_key; the others go through json's C
    scanner, which names the key (about 3 ms for a 1,000-task batch)."""
    separators = raw.count(b":")
    if separators < 2 or _no_repeated_key(raw, separators):
        return
    try:
        json.loads(raw, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        key = exc.key[:100]
        raise ApiError(
            422,
            "invalid_field",
            f"{key}: given twice in one JSON object; give each key once",
            key,
        ) from None
    except (ValueError, RecursionError):
        pass  # what msgspec took and json cannot (huge integers, deep nesting) has no check
