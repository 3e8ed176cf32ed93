"""Requests a worker sends out (``webhook`` tasks, result callbacks): the one
HTTP client, where it may connect, and how much of an answer it reads.

``post`` is the one way out. It connects only where the destination policy
(``taskqueue.destinations``, TASKQUEUE_WEBHOOK_ALLOW) allows: names are
resolved here and the connection is made to the address that was checked, so
a name that resolves differently a moment later (DNS rebinding) gains
nothing. The answer's body is read as raw bytes up to a cap
(TASKQUEUE_WEBHOOK_MAX_RESPONSE_BYTES, 1 MiB by default) and the rest is
never read: the connection is closed instead. Nothing is ever decompressed
(``Accept-Encoding: identity`` is sent, and a receiver that compresses
anyway is read compressed), so a small gzip bomb stays small. Credentials
and query strings never appear in errors or logs."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from taskqueue.destinations import Address, DestinationPolicy, redact_url, scrub
from taskqueue.errors import Permanent

ALLOW_VARIABLE = "TASKQUEUE_WEBHOOK_ALLOW"
MAX_RESPONSE_VARIABLE = "TASKQUEUE_WEBHOOK_MAX_RESPONSE_BYTES"
DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024


class DestinationRefused(Permanent):
    """The URL leads to an address the destination policy refuses."""


class RequestFailed(Exception):
    """The request could not be made or its answer not read (the message
    shows the URL without its secrets)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back: the status, at most ``max_bytes`` of the body exactly
    as sent (never decompressed), whether more was sent than was read, and
    the body's Content-Encoding when the receiver used one anyway."""

    status_code: int
    body: bytes
    truncated: bool
    content_encoding: str | None

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300


def max_response_bytes() -> int:
    """The cap on a body read, from TASKQUEUE_WEBHOOK_MAX_RESPONSE_BYTES
    (checked at start by taskqueue.config)."""
    raw = os.environ.get(MAX_RESPONSE_VARIABLE, "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_MAX_RESPONSE_BYTES


async def post(
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    timeout: float,  # noqa: ASYNC109 - per network operation, as httpx takes it
    max_bytes: int | None = None,
) -> Answer:
    """POST ``content`` to ``url`` under the destination policy and read at
    most ``max_bytes`` of the answer (default: max_response_bytes()).
    Raises DestinationRefused (Permanent) or RequestFailed."""
    cap = max_response_bytes() if max_bytes is None else max_bytes
    sent = {**headers, "accept-encoding": "identity"}
    try:
        client = await _client()
        async with client.stream(
            "POST", url, content=content, headers=sent, timeout=timeout
        ) as response:
            body, truncated = await _read_capped(response, cap)
            encoding = response.headers.get("content-encoding")
            return Answer(response.status_code, body, truncated, encoding)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        # Messages may quote the URL; "from None" keeps its secrets out of tracebacks too.
        detail = scrub(str(exc), url)
        raise RequestFailed(
            f"{redact_url(url)}: {type(exc).__name__}" + (f": {detail}" if detail else "")
        ) from None


async def _read_capped(response: httpx.Response, cap: int) -> tuple[bytes, bool]:
    # aiter_raw: the bytes as they came, no Content-Encoding undone. Leaving
    # the stream unread closes the connection rather than draining it.
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        room = cap - size
        if len(chunk) > room:
            chunks.append(chunk[:room])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


# -- the client, and where it may connect -------------------------------------------

_http: httpx.AsyncClient | None = None
_http_allow: str | None = None  # the TASKQUEUE_WEBHOOK_ALLOW _http was made for


async def _client() -> httpx.AsyncClient:
    # One client per process: connection pooling across requests. The policy
    # is read from the environment, so that a worker needs no wiring.
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
