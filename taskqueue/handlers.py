"""Built-in task types: ``webhook`` (a real HTTP POST), ``noop``, ``sleep`` and
``fail`` (always raises: for trying out retries)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import httpx
import msgspec

from taskqueue.registry import Registry, TaskContext

registry = Registry()

_http: httpx.AsyncClient | None = None


def _client() -> httpx.AsyncClient:
    # One client per process: connection pooling across webhook tasks.
    global _http
    if _http is None or _http.is_closed:
        _http = httpx.AsyncClient(follow_redirects=False)
    return _http


async def close_http_client() -> None:
    global _http
    if _http is not None:
        await _http.aclose()
        _http = None


class WebhookPayload(msgspec.Struct, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(pattern=r"^https?://", max_length=2048)]
    body: Any = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0


class WebhookFailed(Exception):
    """The receiver answered with a non-2xx status."""


@registry.task("webhook", payload=WebhookPayload)
async def webhook(payload: WebhookPayload, ctx: TaskContext) -> dict[str, Any]:
    """POST ``body`` as JSON to ``url``; any 2xx succeeds, anything else fails and retries."""
    headers = {
        "content-type": "application/json",
        "user-agent": "taskqueue-webhook",
        "x-taskqueue-task-id": str(ctx.task_id),
        "x-taskqueue-attempt": str(ctx.attempt),
        **payload.headers,
    }
    response = await _client().post(
        payload.url,
        content=msgspec.json.encode(payload.body),
        headers=headers,
        timeout=payload.timeout_seconds,
    )
    if not response.is_success:
        raise WebhookFailed(f"{payload.url} answered HTTP {response.status_code}")
    return {"status_code": response.status_code}


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
