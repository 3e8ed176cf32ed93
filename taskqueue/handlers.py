"""Built-in task types: ``webhook`` (a real HTTP POST), ``noop``, ``sleep`` and
``fail`` (always raises: for trying out retries).

``webhook`` reaches public addresses only unless TASKQUEUE_WEBHOOK_ALLOW opens
more (see ``taskqueue.destinations``). The check is made on the address each
connection actually goes to: names are resolved here and the connection is
made to the address that was checked, so a name that resolves differently a
moment later (DNS rebinding) gains nothing. A refused destination fails the
task at once (``Permanent``). Producers cannot set ``Host`` or hop-by-hop
headers, and credentials and query strings never appear in errors, events
or logs."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import re
import socket
from collections.abc import Iterable
from typing import Annotated, Any

import httpcore
import httpx
import msgspec

from taskqueue.destinations import Address, DestinationPolicy, redact_url, scrub
from taskqueue.errors import Permanent
from taskqueue.registry import Registry, TaskContext

registry = Registry()

ALLOW_VARIABLE = "TASKQUEUE_WEBHOOK_ALLOW"

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


class DestinationRefused(Permanent):
    """The webhook's URL leads to an address the destination policy refuses."""


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
    shown = redact_url(payload.url)
    try:
        response = await (await _client()).post(
            payload.url,
            content=msgspec.json.encode(payload.body),
            headers=headers,
            timeout=payload.timeout_seconds,
        )
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        # Messages may quote the URL; "from None" keeps its secrets out of tracebacks too.
        detail = scrub(str(exc), payload.url)
        raise WebhookFailed(
            f"{shown}: {type(exc).__name__}" + (f": {detail}" if detail else "")
        ) from None
    if not response.is_success:
        raise WebhookFailed(f"{shown} answered HTTP {response.status_code}")
    return {"status_code": response.status_code}


# -- the HTTP client, and where it may connect --------------------------------------

_http: httpx.AsyncClient | None = None
_http_allow: str | None = None  # the TASKQUEUE_WEBHOOK_ALLOW _http was made for


async def _client() -> httpx.AsyncClient:
    # One client per process: connection pooling across webhook tasks. The
    # policy is read from the environment, so that a worker needs no wiring.
    global _http, _http_allow
    allow = os.environ.get(ALLOW_VARIABLE, "")
    if _http is None or _http.is_closed or allow != _http_allow:
        if _http is not None:
            await _http.aclose()
        policy = DestinationPolicy.parse(allow)
        _http = httpx.AsyncClient(
            transport=_GuardedTransport(policy), follow_redirects=False, trust_env=False
        )
        _http_allow = allow
    return _http


async def guarded_client() -> httpx.AsyncClient:
    """The process's HTTP client, connecting only where the destination
    policy allows (callback deliveries use it too)."""
    return await _client()


async def close_http_client() -> None:
    global _http
    if _http is not None:
        await _http.aclose()
        _http = None


async def resolve(host: str, port: int, within: float | None) -> list[Address]:
    """The addresses a host name stands for (itself, for an address)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(within):
            found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0])) for info in found))


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the policy allows."""

    def __init__(self, policy: DestinationPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        refused: list[str] = []
        failure: Exception | None = None
        for address in await resolve(host, port, timeout):
            reason = self._policy.refusal(host, address)
            if reason is not None:
                refused.append(f"{address} is {reason}")
                continue
            try:
                stream = await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            # Belt and braces: the peer of the socket itself.
            peer = stream.get_extra_info("server_addr")
            reason = "unknown" if not peer else self._policy.refusal(host, _address(peer[0]))
            if reason is not None:
                await stream.aclose()
                refused.append(f"the connection reached {peer and peer[0]}, {reason}")
                continue
            return stream
        if failure is not None:
            raise failure
        raise DestinationRefused(
            f"webhook destination refused: {host} -> {'; '.join(refused) or 'no address'} "
            f"({ALLOW_VARIABLE} can open it)"
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationRefused("webhook destination refused: no Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _address(text: str) -> Address:
    return ipaddress.ip_address(text.split("%", 1)[0])


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, policy: DestinationPolicy) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_GuardedBackend(policy),
        )


class _RedactUrls(logging.Filter):
    """httpx logs every request's URL at INFO; show it without its secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_url(str(arg)) if isinstance(arg, httpx.URL) else arg for arg in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_RedactUrls())


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
