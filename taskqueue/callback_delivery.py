"""The ``taskqueue.callback`` task type: delivers one result callback.

The statement that ends a task with a callback queues one of these
(_task_ended.sql) with the URL and the body (id, status, result, error,
attempts, finished_at). Delivering through the queue gives it retries with
backoff and a history like any task. The POST follows Standard Webhooks:
``webhook-id`` (this delivery task's id: the same on every retry, so a
receiver can drop duplicates), ``webhook-timestamp`` (Unix seconds of this
attempt) and ``webhook-signature`` (``taskqueue.callbacks.sign``) keyed with
TASKQUEUE_CALLBACK_SECRET, which the worker must have: without it nothing is
sent and the attempt fails (and retries, so setting the secret recovers).

The POST is the ``webhook`` type's (``outbound.post``): its destination
policy (TASKQUEUE_WEBHOOK_ALLOW; a refused address fails the delivery at
once), and at most TASKQUEUE_WEBHOOK_MAX_RESPONSE_BYTES (1 MiB) of the
answer read, as the bytes sent (asking for no compression, decoding none)."""

from __future__ import annotations

import os
import time
from typing import Annotated, Any

import msgspec

from taskqueue import outbound
from taskqueue.callbacks import CALLBACK_TYPE, SECRET_VARIABLE, secret_key, sign
from taskqueue.destinations import redact_url
from taskqueue.limits import MAX_CALLBACK_URL_LENGTH
from taskqueue.registry import Registry, TaskContext

registry = Registry()

TIMEOUT_SECONDS = 10.0


class CallbackFailed(Exception):
    """The POST failed, or the receiver answered with a non-2xx status."""


class CallbackNotSigned(Exception):
    """This worker has no (valid) TASKQUEUE_CALLBACK_SECRET to sign with."""


class CallbackPayload(msgspec.Struct, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(pattern=r"^https?://", max_length=MAX_CALLBACK_URL_LENGTH)]
    body: Any = None


@registry.task(CALLBACK_TYPE, payload=CallbackPayload)
async def deliver(payload: CallbackPayload, ctx: TaskContext) -> dict[str, Any]:
    """POST the signed outcome to the callback URL; any 2xx succeeds."""
    secret = os.environ.get(SECRET_VARIABLE, "")
    if not secret:
        raise CallbackNotSigned(f"{SECRET_VARIABLE} is not set: callbacks are only sent signed")
    try:
        key = secret_key(secret)
    except ValueError as exc:
        raise CallbackNotSigned(str(exc)) from None
    body = msgspec.json.encode(payload.body)
    message_id = str(ctx.task_id)
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": "taskqueue-callback",
        "accept-encoding": "identity",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, message_id, timestamp, body),
    }
    try:
        answer = await outbound.post(
            payload.url, content=body, headers=headers, timeout=TIMEOUT_SECONDS
        )
    except outbound.RequestFailed as exc:
        raise CallbackFailed(str(exc)) from None
    if not answer.is_success:
        cut = f" (body cut at {len(answer.body)} bytes)" if answer.truncated else ""
        raise CallbackFailed(f"{redact_url(payload.url)} answered HTTP {answer.status_code}{cut}")
    result: dict[str, Any] = {"status_code": answer.status_code, "webhook_id": message_id}
    if answer.truncated:  # the receiver sent more than the worker reads
        result["body_truncated"] = True
    return result
