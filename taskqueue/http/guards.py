"""Requests a browser could be tricked into sending are refused before auth
and before any handler runs.

Without tokens the API trusts whoever reaches 127.0.0.1, and any web page open
in the developer's browser can reach it. Two rules keep such pages out:

- A request body must be ``application/json`` (415 otherwise). Browsers send
  cross-site ``text/plain``, form and multipart bodies without asking, but a
  JSON body needs a CORS preflight, which this API never grants.
- A state-changing request a browser marks as coming from another site
  (``Sec-Fetch-Site``, or an ``Origin`` other than the API's own host when
  the browser sends no Sec-Fetch-Site) is refused with 403, body or not
  (cancel and retry have none).

Clients that are not browsers send neither header and are unaffected."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from litestar.enums import ScopeType
from litestar.exceptions import HTTPException, PermissionDeniedException
from litestar.types import ASGIApp, Receive, Scope, Send

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SAME_SITE = frozenset({b"same-origin", b"none"})


def request_guard_middleware() -> Callable[[ASGIApp], ASGIApp]:
    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == ScopeType.HTTP and scope.get("method") in UNSAFE_METHODS:
                check_request(scope["headers"])
            await app(scope, receive, send)

        return middleware

    return wrap


def check_request(headers: Iterable[tuple[bytes, bytes]]) -> None:
    content_type = origin = fetch_site = None
    host = b""
    has_body = False
    for name, value in headers:
        if name == b"content-type":
            content_type = value
        elif name == b"content-length":
            has_body = has_body or value.strip() != b"0"
        elif name == b"transfer-encoding":
            has_body = True
        elif name == b"origin":
            origin = value
        elif name == b"sec-fetch-site":
            fetch_site = value
        elif name == b"host":
            host = value
    if fetch_site is not None:
        if fetch_site.strip().lower() not in _SAME_SITE:
            raise PermissionDeniedException(
                "cross-site request refused (Sec-Fetch-Site: "
                f"{fetch_site.decode('latin-1')[:40]}): the API does not serve other web pages"
            )
    elif origin is not None and _host_of(origin) != host.strip().lower():
        raise PermissionDeniedException(
            "cross-origin request refused (Origin differs from Host): "
            "the API does not serve other web pages"
        )
    if has_body and (content_type is None or _media_type(content_type) != b"application/json"):
        raise HTTPException(
            status_code=415,
            detail="request bodies must be JSON (Content-Type: application/json)",
        )


def _media_type(content_type: bytes) -> bytes:
    return content_type.split(b";", 1)[0].strip().lower()


def _host_of(origin: bytes) -> bytes:
    # "http://127.0.0.1:8000" -> b"127.0.0.1:8000"; "null" -> b"null" (never a host)
    return origin.strip().lower().partition(b"://")[2].rstrip(b"/")
