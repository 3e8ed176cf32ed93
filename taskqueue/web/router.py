"""The dashboard as one Litestar router: its pages, sign-in, static files,
who is looking (the ``viewer`` dependency) and errors as HTML pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Request, Response, Router, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from taskqueue.client import TaskQueue
from taskqueue.config import Settings
from taskqueue.http.auth import Authenticator
from taskqueue.http.errors import handle_exception
from taskqueue.tenancy import TenantQueue
from taskqueue.web import pages, signin, workflows
from taskqueue.web.headers import SECURITY_HEADERS, html_response
from taskqueue.web.render import render, static_bytes
from taskqueue.web.session import Sessions, Viewer

MEDIA_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}


class SignInRequired(Exception):
    """A page was asked for without a valid session while auth is on."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


async def _viewer(request: Request[Any, Any, State], state: State) -> Viewer:
    sessions: Sessions = state.dashboard_sessions
    if not sessions.enabled:
        return sessions.open_viewer()
    viewer = await sessions.current(request.scope["headers"])
    if viewer is None:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        raise SignInRequired(target)
    return viewer


async def _task_queue(state: State, viewer: NamedDependency[Viewer]) -> TaskQueue:
    """The app's TaskQueue, scoped to the viewer's tenant when its token has
    one: the pages then show that tenant's view."""
    tq: TaskQueue = state.tq
    return tq if viewer.tenant is None else TenantQueue(tq, viewer.tenant)


def _to_sign_in(request: Request[Any, Any, Any], exc: SignInRequired) -> Response[Any]:
    return Redirect(path=f"/login?next={quote(exc.target, safe='')}", status_code=303)


def _error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The API's status and message for the error, as a page (never a
    trace); as the API's JSON for the scripts' requests (sign in, sign out)."""
    answer = handle_exception(request, exc)
    if request.method != "GET":
        return answer
    body = answer.content
    sessions: Sessions = request.app.state.dashboard_sessions
    html = render(
        "error.html",
        Viewer(name="", scopes=frozenset(), csrf="")
        if sessions.enabled
        else sessions.open_viewer(),
        page="error",
        status=body.status,
        message=body.message,
    )
    return html_response(html, status_code=body.status)


@get("/static/{name:str}", opt={"query_parameters": ("v",)}, sync_to_thread=False)
def static_file(name: FromPath[str], v: FromQuery[str] = "") -> Response[bytes]:
    """Files of taskqueue/web/static: the page's CSS and script (the pages
    link them with their content hash as ``v``, so they may be cached for good)."""
    content = static_bytes(name)
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    if content is None or suffix not in MEDIA_TYPES:
        return html_response("not found", status_code=404)  # type: ignore[return-value]
    cache = "public, max-age=31536000, immutable" if v else "no-cache"
    return Response(
        content,
        media_type=MEDIA_TYPES[suffix],
        headers={**SECURITY_HEADERS, "cache-control": cache},
    )


def dashboard_router(settings: Settings, authenticator: Authenticator) -> tuple[Router, Sessions]:
    """The router to mount at /, and the sessions the API's auth accepts."""
    sessions = Sessions.from_settings(settings, authenticator)
    router = Router(
        path="/",
        route_handlers=[
            pages.overview_page,
            pages.tasks_page,
            pages.task_page,
            pages.failures_page,
            pages.queues_page,
            pages.tenants_page,
            pages.workers_page,
            workflows.workflows_page,
            workflows.workflow_page,
            signin.login_page,
            signin.sign_in,
            signin.sign_out,
            static_file,
        ],
        dependencies={"viewer": Provide(_viewer), "tq": Provide(_task_queue)},
        exception_handlers={SignInRequired: _to_sign_in, Exception: _error_page},
        include_in_schema=False,
    )
    return router, sessions
