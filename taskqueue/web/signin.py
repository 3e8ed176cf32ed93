"""Signing in and out of the dashboard. The sign-in page posts the token as
JSON (the API takes no other request bodies, see taskqueue.http.guards);
answers set or clear the session cookie."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie, State
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.params import FromQuery
from litestar.response import Redirect

from taskqueue.http.body import decode_body
from taskqueue.web.headers import html_response
from taskqueue.web.render import render
from taskqueue.web.session import COOKIE_NAME, Sessions, csrf_matches


class SignIn(msgspec.Struct, forbid_unknown_fields=True):
    token: str
    next: str = "/"


class SignedIn(msgspec.Struct):
    next: str


_decode_sign_in = msgspec.json.Decoder(SignIn).decode


def safe_next(target: str) -> str:
    """Where to go after signing in: a path on this site, never another site
    (``//host`` and ``/\\host`` are other sites to a browser)."""
    if not target.startswith("/") or target.startswith(("//", "/\\")) or len(target) > 2000:
        return "/"
    if any(ord(c) < 0x20 for c in target):
        return "/"
    return target


def _sessions(state: State) -> Sessions:
    sessions: Sessions = state.dashboard_sessions
    return sessions


@get("/login", opt={"query_parameters": ("next",)}, name="login")
async def login_page(state: State, next: FromQuery[str] = "/") -> Response[str]:
    sessions = _sessions(state)
    if not sessions.enabled:
        return Redirect(path="/", status_code=303)
    return html_response(
        render("login.html", sessions.open_viewer(), page="login", next=safe_next(next))
    )


@post("/login", status_code=200, opt={"query_parameters": ()}, name="sign-in")
async def sign_in(request: Request[Any, Any, State], state: State) -> Response[SignedIn]:
    sessions = _sessions(state)
    body = decode_body(_decode_sign_in, await request.body(), envelope=1)
    signed = sessions.sign_in(body.token[:10_000]) if sessions.enabled else None
    if signed is None:
        if not sessions.enabled:
            return Response(SignedIn(next=safe_next(body.next)))
        raise NotAuthorizedException("that token is not valid")
    cookie, _ = signed
    return Response(
        SignedIn(next=safe_next(body.next)),
        cookies=[
            Cookie(
                key=COOKIE_NAME,
                value=cookie,
                max_age=sessions.lifetime_seconds,
                path="/",
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
        ],
        headers={"cache-control": "no-store"},
    )


@post("/logout", status_code=200, opt={"query_parameters": ()}, name="sign-out")
async def sign_out(request: Request[Any, Any, State], state: State) -> Response[SignedIn]:
    sessions = _sessions(state)
    viewer = await sessions.current(request.scope["headers"])
    if viewer is not None:
        if not csrf_matches(viewer, request.scope["headers"]):
            raise PermissionDeniedException("missing or wrong CSRF token (X-CSRF-Token)")
        await sessions.sign_out(viewer)  # a copy of the cookie stops working too
    return Response(
        SignedIn(next="/login" if sessions.enabled else "/"),
        cookies=[
            Cookie(
                key=COOKIE_NAME,
                value="",
                max_age=0,
                path="/",
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
        ],
        headers={"cache-control": "no-store"},
    )
