"""Request bodies decoded with the nesting guard: the one way both surfaces
turn a JSON body into a typed struct."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from taskqueue.http.errors import ApiError
from taskqueue.validation import MAX_PAYLOAD_DEPTH, too_deep_at

T = TypeVar("T")


def decode_body(decode: Callable[[bytes], T], raw: bytes, envelope: int) -> T:
    """``decode(raw)``, or a 422 naming the field when the body nests so deep
    that decoding exhausts the stack. ``envelope``: how many levels of the
    body wrap its free-form JSON (1 for ``{"payload": ...}``, 3 for
    ``{"tasks": [{"payload": ...}]}``); they name the field. (Payloads nested
    deeper than MAX_PAYLOAD_DEPTH but not that deep are refused per task, with
    the same message, by taskqueue.enqueue.prepare; no body pays for a scan
    beforehand.)"""
    try:
        return decode(raw)
    except RecursionError:
        where = too_deep_at(raw, MAX_PAYLOAD_DEPTH + envelope, name_levels=envelope) or "body"
        raise ApiError(
            422,
            "invalid_field",
            f"{where}: nested deeper than {MAX_PAYLOAD_DEPTH} levels of arrays and objects",
            where,
        ) from None
