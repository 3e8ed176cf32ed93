"""Which ``Host`` a request may name: the DNS-rebinding guard.

Without tokens the API and dashboard trust whoever reaches 127.0.0.1. A web
page on a domain its owner points at 127.0.0.1 (DNS rebinding) is "same
origin" to the browser, so the cross-site rules of taskqueue.http.guards let
it through; but its requests still carry that domain in ``Host``. So with
auth off only loopback names are accepted (``localhost``, ``127.0.0.1``,
``[::1]``, any port), plus the names in TASKQUEUE_ALLOWED_HOSTS (a
deployment behind a proxy that keeps the public name); anything else is 421.
With auth on, TASKQUEUE_ALLOWED_HOSTS, when set, is enforced the same way.
/health and /ready answer any name: probes use addresses, and they hold no
task data."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # settings check names without the web stack (workers read them too)
    from litestar.types import ASGIApp, Receive, Scope, Send

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
OPEN_PATHS = frozenset({"/health", "/ready"})


def parse_allowed_hosts(text: str) -> frozenset[str]:
    """``api.example.com, 10.0.0.5`` (TASKQUEUE_ALLOWED_HOSTS) as host names;
    ValueError naming an entry that is no host."""
    hosts: set[str] = set()
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        host = host_name(entry.encode("latin-1", "replace"))
        if host is None or not host.isascii() or not host.isprintable():
            raise ValueError(f"TASKQUEUE_ALLOWED_HOSTS: {entry!r} is not a host name")
        hosts.add(host)
    return frozenset(hosts)


def host_name(value: bytes) -> str | None:
    """The host of a ``Host`` header, lower case, without port, brackets or
    final dot: ``[::1]:8000`` -> ``::1``; None when malformed."""
    text = value.decode("latin-1").strip().lower()
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return inside or None
    name, colon, port = text.partition(":")
    if colon and not port.isdigit():
        return None
    name = name.rstrip(".")
    return name or None


def host_allowed(headers: Iterable[tuple[bytes, bytes]], allowed: frozenset[str]) -> bool:
    for name, value in headers:
        if name == b"host":
            return host_name(value) in allowed
    # No Host at all: not a browser (every browser sends one), so no rebinding.
    return True


def host_guard_middleware(allowed: frozenset[str]) -> Callable[[ASGIApp], ASGIApp]:
    """421 for an HTTP request whose ``Host`` is not in ``allowed``."""
    from litestar.exceptions import HTTPException

    shown = ", ".join(sorted(allowed))

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if (
                scope["type"] in ("http", "websocket")
                and scope["path"] not in OPEN_PATHS
                and not host_allowed(scope["headers"], allowed)
            ):
                raise HTTPException(
                    status_code=421,
                    detail=f"this server answers only to the host names {shown} "
                    "(TASKQUEUE_ALLOWED_HOSTS adds more)",
                )
            await app(scope, receive, send)

        return middleware

    return wrap
