"""Built-in task types: ``webhook`` (a real HTTP POST), ``noop``, ``sleep`` and
``fail`` (always raises: for trying out retries).

``webhook`` sends through ``taskqueue.outbound``: public addresses only unless
TASKQUEUE_WEBHOOK_ALLOW opens more, checked on the address each connection
actually goes to; at most TASKQUEUE_WEBHOOK_MAX_RESPONSE_BYTES of the answer
read, never decompressed. A refused destination fails the task at once
(``Permanent``). Producers cannot set ``Host`` or hop-by-hop headers, and
credentials and query strings never appear in errors, events or logs."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

import httpx
import msgspec

from taskqueue import outbound
from taskqueue.destinations import redact_url, scrub
from taskqueue.outbound import ALLOW_VARIABLE as ALLOW_VARIABLE
from taskqueue.outbound import DestinationRefused as DestinationRefused
from taskqueue.outbound import close_http_client as close_http_client
from taskqueue.registry import Registry, TaskContext

registry = Registry()

# Hop-by-hop headers (RFC 9110 section 7.6.1) and those that frame the message:
# the HTTP client owns them. X-Taskqueue-* identify the attempt to the receiver.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "expect",
    }
)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]{0,8192}")


class WebhookFailed(Exception):
    """The request failed, or the receiver answered with a non-2xx status."""


class WebhookPayload(msgspec.Struct, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(pattern=r"^https?://", max_length=2048)]
    body: Any = None
    headers: Annotated[dict[str, str], msgspec.Meta(max_length=50)] = msgspec.field(
        default_factory=dict
    )
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0

    def __post_init__(self) -> None:
        # Raised as ValueError, msgspec reports these as validation errors of
        # the payload (422 at the API, InvalidTask in Python).
        try:
            host = httpx.URL(self.url).host
        except httpx.InvalidURL as exc:
            raise ValueError(f"url: not a valid URL ({scrub(str(exc), self.url)})") from None
        if not host:
            raise ValueError("url: needs a host")
        for name, value in self.headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"headers: {name[:100]!r} is not a valid header name")
            lowered = name.lower()
            if lowered in RESERVED_HEADERS or lowered.startswith("x-taskqueue-"):
                raise ValueError(
                    f"headers: {name!r} cannot be set by a producer "
                    "(Host, hop-by-hop and X-Taskqueue-* headers are the worker's)"
                )
            if not _HEADER_VALUE.fullmatch(value):
                raise ValueError(
                    f"headers: the value of {name!r} must be printable ASCII, "
                    "at most 8192 characters"
                )


@registry.task("webhook", payload=WebhookPayload)
async def webhook(payload: WebhookPayload, ctx: TaskContext) -> dict[str, Any]:
    """POST ``body`` as JSON to ``url``; any 2xx succeeds, anything else fails and retries."""
    headers = {
        "content-type": "application/json",
        "user-agent": "taskqueue-webhook",
        **{name.lower(): value for name, value in payload.headers.items()},
        "x-taskqueue-task-id": str(ctx.task_id),
        "x-taskqueue-attempt": str(ctx.attempt),
    }
    try:
        answer = await outbound.post(
            payload.url,
            content=msgspec.json.encode(payload.body),
            headers=headers,
            timeout=payload.timeout_seconds,
        )
    except outbound.RequestFailed as exc:
        raise WebhookFailed(str(exc)) from None
    if not answer.is_success:
        cut = f" (body cut at {len(answer.body)} bytes)" if answer.truncated else ""
        raise WebhookFailed(f"{redact_url(payload.url)} answered HTTP {answer.status_code}{cut}")
    result: dict[str, Any] = {"status_code": answer.status_code}
    if answer.truncated:
        # The receiver accepted the request; its answer was longer than a
        # worker reads (TASKQUEUE_WEBHOOK_MAX_RESPONSE_BYTES) and was cut.
        result["body_truncated"] = True
        result["body_bytes_read"] = len(answer.body)
    if answer.content_encoding:
        result["content_encoding"] = answer.content_encoding[:100]
    return result


@registry.task("noop")
async def noop(payload: Any, ctx: TaskContext) -> None:
    """Does nothing: for smoke tests and benchmarks."""


class SleepPayload(msgspec.Struct, forbid_unknown_fields=True):
    seconds: Annotated[float, msgspec.Meta(ge=0, le=86400)] = 1.0


@registry.task("sleep", payload=SleepPayload)
async def sleep(payload: SleepPayload, ctx: TaskContext) -> dict[str, float]:
    await asyncio.sleep(payload.seconds)
    return {"slept": payload.seconds}


class FailPayload(msgspec.Struct, forbid_unknown_fields=True):
    message: Annotated[str, msgspec.Meta(max_length=1000)] = "this task always fails"


class IntentionalFailure(Exception):
    """Raised by the ``fail`` task type."""


@registry.task("fail", payload=FailPayload)
async def fail(payload: FailPayload, ctx: TaskContext) -> None:
    raise IntentionalFailure(payload.message)
