"""What a result callback is: the ``callback`` a task may carry (checked
here for every producer), and the Standard Webhooks signature its delivery
carries. No I/O: the delivery itself is the ``taskqueue.callback`` task type
(``taskqueue.callback_delivery``), enqueued by the statement that ends the
task.

A signature is ``v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">``
keyed with the base64-decoded part of ``TASKQUEUE_CALLBACK_SECRET``
(``whsec_<base64>``), as https://www.standardwebhooks.com specifies."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any, Final
from urllib.parse import urlsplit

from taskqueue.limits import MAX_CALLBACK_URL_LENGTH

CALLBACK_TYPE: Final = "taskqueue.callback"
CALLBACK_EVENTS: Final = ("succeeded", "failed", "cancelled", "expired")
SECRET_VARIABLE: Final = "TASKQUEUE_CALLBACK_SECRET"  # noqa: S105 - a name, not a secret
SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the format's prefix


def callback_problem(value: object) -> tuple[str, str] | None:
    """(the field under ``callback`` that is wrong, why), or None when
    ``value`` is ``{"url": "http(s)://host/...", "events": [...]}`` with
    events a non-empty subset of CALLBACK_EVENTS (default: all of them)."""
    if not isinstance(value, dict):
        return "", 'an object {"url": ..., "events": [...]}'
    unknown = sorted(str(key) for key in value if key not in ("url", "events"))
    if unknown:
        return unknown[0], 'unknown field (a callback has "url" and "events")'
    url = value.get("url")
    if type(url) is not str or not 0 < len(url) <= MAX_CALLBACK_URL_LENGTH:
        return "url", f"an http(s) URL of at most {MAX_CALLBACK_URL_LENGTH} characters"
    if not url.isascii() or not url.isprintable() or " " in url:
        return "url", "printable ASCII without spaces (percent-encode the rest)"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "url", "not a valid URL"
    if parts.scheme not in ("http", "https") or not host:
        return "url", "an http:// or https:// URL with a host"
    events = value.get("events", list(CALLBACK_EVENTS))
    if not isinstance(events, list) or not events:
        return "events", f"a non-empty list of: {', '.join(CALLBACK_EVENTS)}"
    for event in events:
        if event not in CALLBACK_EVENTS:
            return "events", f"{str(event)[:50]!r} is not one of: {', '.join(CALLBACK_EVENTS)}"
    return None


def normalised(value: dict[str, Any]) -> dict[str, Any]:
    """The callback as stored: events present, each once, in a fixed order."""
    events = value.get("events", list(CALLBACK_EVENTS))
    return {"url": value["url"], "events": [e for e in CALLBACK_EVENTS if e in events]}


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; ValueError naming the variable."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"{SECRET_VARIABLE}: must look like whsec_<base64>")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{SECRET_VARIABLE}: the part after whsec_ is not base64") from None
    if len(key) < 16:
        raise ValueError(f"{SECRET_VARIABLE}: the key must be at least 16 bytes")
    return key


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one delivery."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()
