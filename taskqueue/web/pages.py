"""The dashboard's pages, served at / beside the API: Overview, Tasks, Task,
Failures, Queues, Tenants and Workers. Each is a plain GET with its state in the URL
(shareable, bookmarkable, the back button works); the page script keeps it
live by fetching the same URL again when the event stream says something
changed. Actions are the API's own endpoints, called by the page script."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect

from taskqueue.client import TaskQueue
from taskqueue.errors import InvalidTask, TaskNotFound, TenantForbidden
from taskqueue.limits import MAX_OFFSET, MAX_TENANT_LENGTH
from taskqueue.models import Status, Task, TaskFilter
from taskqueue.store import QueueState
from taskqueue.validation import as_task_id, queue_problem, text_problem
from taskqueue.web import timeline
from taskqueue.web.headers import html_response
from taskqueue.web.overview import OverviewSnapshot
from taskqueue.web.render import pretty_json, render
from taskqueue.web.session import Viewer

PAGE_SIZE = 50
LIST_PAGE_SIZE = 100  # queues, workers and failure groups per page
OVERVIEW_QUEUES = 50  # the busiest queues the Overview shows
QUEUE_CHOICES = 200  # queue names the Tasks page offers as filters
TASK_FILTERS = (
    "status",
    "queue",
    "type",
    "created_after",
    "created_before",
    "q",
    "cursor",
    "tenant",
)
_encode = msgspec.json.Encoder().encode


def overview_snapshot(state: State, tq: TaskQueue) -> OverviewSnapshot:
    """One per API process, made on first use."""
    snapshot: OverviewSnapshot | None = state.get("dashboard_overview")
    if snapshot is None:
        snapshot = OverviewSnapshot(tq.views)
        state.dashboard_overview = snapshot
    return snapshot


def operator_only(viewer: Viewer) -> None:
    """A page about every tenant's work (queues, workers, the overview) is an operator's."""
    if viewer.tenant is not None:
        raise TenantForbidden("this page is for operators; a tenant sees its tasks")


@get("/", opt={"query_parameters": ()}, name="overview")
async def overview_page(
    state: State, tq: NamedDependency[TaskQueue], viewer: NamedDependency[Viewer]
) -> Response[Any]:
    if viewer.tenant is not None:
        return Redirect(path="/tasks", status_code=303)  # a tenant's home is its tasks
    data = await overview_snapshot(state, tq).get()
    peak_hour = max((b.finished for b in data.last_hour), default=0)
    peak_day = max((b.finished for b in data.last_day), default=0)
    return html_response(
        render(
            "overview.html",
            viewer,
            page="overview",
            stream="/api/events",
            data=data,
            top_queues=sorted(data.queues, key=_busy, reverse=True)[:OVERVIEW_QUEUES],
            peak_hour=peak_hour,
            peak_day=peak_day,
        )
    )


def _busy(queue: QueueState) -> int:
    return queue.queued + queue.running + queue.failed


def _offset(raw: str) -> int:
    """A page's offset from the URL; a wrong one is the first page."""
    return int(raw) if raw.isdigit() and int(raw) <= MAX_OFFSET else 0


def _pager(path: str, offset: int, got: int, **kept: str) -> dict[str, str | None]:
    """Links to the first and the next page of a list paged by offset."""
    query = {k: v for k, v in kept.items() if v}
    first = f"{path}?{urlencode(query)}" if query else path
    following = f"{path}?{urlencode({**query, 'offset': offset + got})}"
    return {
        "first_link": first if offset else None,
        "next_link": following if got == LIST_PAGE_SIZE else None,
    }


class TaskQuery(msgspec.Struct, kw_only=True):
    """The Tasks page's filters, as they appear in its URL."""

    status: str = ""
    queue: str = ""
    type: str = ""
    created_after: str = ""
    created_before: str = ""
    q: str = ""
    cursor: str = ""
    tenant: str = ""  # an operator's filter (a tenant's view is its own already)

    def link(self, **changes: str) -> str:
        values = {**msgspec.structs.asdict(self), **changes}
        kept = {k: v for k, v in values.items() if v}
        return "/tasks" + (f"?{urlencode(kept)}" if kept else "")


def _zoned(text: str, field: str, problems: list[str]) -> datetime | None:
    """A time from a datetime-local input (taken as UTC) or ISO 8601 with a zone."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        problems.append(f"{field}: not a date and time")
        return None
    if not 1970 <= value.year <= 9998:
        problems.append(f"{field}: a year from 1970 to 9998")
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@get("/tasks", opt={"query_parameters": TASK_FILTERS}, name="tasks")
async def tasks_page(
    request: Request[Any, Any, State],
    tq: NamedDependency[TaskQueue],
    viewer: NamedDependency[Viewer],
) -> Response[str]:
    params = request.query_params
    query = TaskQuery(**{name: params.get(name, "").strip()[:300] for name in TASK_FILTERS})
    problems: list[str] = []
    status = None
    if query.status:
        try:
            status = Status(query.status)
        except ValueError:
            problems.append("status: not a status")
    after = _zoned(query.created_after, "created after", problems)
    before = _zoned(query.created_before, "created before", problems)
    cursor = as_task_id(query.cursor) if query.cursor else None
    if query.cursor and cursor is None:
        problems.append("cursor: not a task id")
    for field, value in (("search", query.q), ("queue", query.queue), ("type", query.type)):
        if value and (problem := text_problem(value, max_length=300, min_length=1)):
            problems.append(f"{field}: {problem}")
    if query.tenant and (problem := queue_problem(query.tenant, max_length=MAX_TENANT_LENGTH)):
        problems.append(f"tenant: {problem}")
    found_id = as_task_id(query.q) if query.q and not problems else None
    tasks: list[Task] = []
    if found_id is not None:
        try:
            tasks = [await tq.get(found_id)]
        except TaskNotFound:
            tasks = []
    elif not problems:
        try:
            tasks = await _find(tq, query, status, after, before, cursor, viewer.tenant)
        except InvalidTask as exc:
            problems.append(str(exc))
    # "All matching" acts through the bulk API's filter, which has no lower
    # bound on creation and no search: offered only when neither is set.
    whole_filter = None
    if not query.q and after is None and not problems:
        whole_filter = _encode(
            TaskFilter(
                status=status,
                queue=query.queue or None,
                type=query.type or None,
                created_before=before,
                tenant=query.tenant or None,
            )
        ).decode()
    next_link = None
    if len(tasks) == PAGE_SIZE and found_id is None:
        next_link = query.link(cursor=str(tasks[-1].id))
    stream = "/api/events"
    if query.queue:
        stream += "?" + urlencode({"queue": query.queue})
    usage = None
    if viewer.tenant is None:
        states = await tq.views.queue_states(limit=QUEUE_CHOICES)
        queue_names = [q.name for q in states.queues]
    else:  # no other tenant's queue names; how much of its quota it uses
        queue_names = []
        operator: TaskQueue = request.app.state.tq
        usage = await operator.tenants.get(viewer.tenant)
    return html_response(
        render(
            "tasks.html",
            viewer,
            page="tasks",
            stream=stream,
            query=query,
            problems=problems,
            tasks=tasks,
            statuses=[s.value for s in Status],
            queue_names=queue_names,
            whole_filter=whole_filter,
            usage=usage,
            next_link=next_link,
            newest_link=query.link(cursor="") if query.cursor else None,
        )
    )


async def _find(
    tq: TaskQueue,
    query: TaskQuery,
    status: Status | None,
    after: datetime | None,
    before: datetime | None,
    cursor: uuid.UUID | None,
    tenant: str | None,
) -> list[Task]:
    if query.q:
        return await tq.views.search(
            query.q,
            status=status,
            queue=query.queue or None,
            task_type=query.type or None,
            created_after=after,
            created_before=before,
            before_id=cursor,
            limit=PAGE_SIZE,
            tenant=tenant or query.tenant or None,
        )
    return await tq.list(
        status=status,
        queue=query.queue or None,
        type=query.type or None,
        created_after=after,
        created_before=before,
        cursor=cursor,
        limit=PAGE_SIZE,
        tenant=query.tenant or None,
    )


@get("/tasks/{task_id:str}", opt={"query_parameters": ()}, name="task")
async def task_page(
    tq: NamedDependency[TaskQueue], viewer: NamedDependency[Viewer], task_id: FromPath[str]
) -> Response[str]:
    found = as_task_id(task_id)
    if found is None:
        raise TaskNotFound(repr(task_id[:64]))
    task = await tq.get(found)
    events = await tq.history(found)
    return html_response(
        render(
            "task.html",
            viewer,
            page="task",
            stream=f"/api/events?task_id={task.id}",
            task=task,
            events=events,
            attempts=timeline.attempts(events),
            payload=pretty_json(task.payload),
            result=None if task.result is None else pretty_json(task.result),
        )
    )


@get("/failures", opt={"query_parameters": ("queue", "type", "offset")}, name="failures")
async def failures_page(
    tq: NamedDependency[TaskQueue],
    viewer: NamedDependency[Viewer],
    queue: FromQuery[str] = "",
    task_type: Annotated[str, QueryParameter(name="type")] = "",
    offset: FromQuery[str] = "",
) -> Response[str]:
    skip = _offset(offset)
    problems = [
        f"{field}: {problem}"
        for field, value in (("queue", queue), ("type", task_type))
        if value and (problem := text_problem(value, max_length=300, min_length=1))
    ]
    groups = []
    if not problems:
        groups = await tq.failures(
            queue=queue or None, type=task_type or None, limit=LIST_PAGE_SIZE, offset=skip
        )
    filters = [
        (
            group,
            _encode(
                TaskFilter(
                    status=Status.FAILED, queue=group.queue, type=group.type, error=group.error
                )
            ).decode(),
            # Cancel: tasks of the group still waiting for another attempt.
            _encode(TaskFilter(queue=group.queue, type=group.type, error=group.error)).decode(),
        )
        for group in groups
    ]
    return html_response(
        render(
            "failures.html",
            viewer,
            page="failures",
            stream="/api/events",
            groups=filters,
            problems=problems,
            queue=queue,
            type=task_type,
            **_pager("/failures", skip, len(groups), queue=queue, type=task_type),
        )
    )


@get("/queues", opt={"query_parameters": ("offset",)}, name="queues")
async def queues_page(
    tq: NamedDependency[TaskQueue], viewer: NamedDependency[Viewer], offset: FromQuery[str] = ""
) -> Response[str]:
    operator_only(viewer)
    skip = _offset(offset)
    states = await tq.views.queue_states(failed=True, offset=skip, limit=LIST_PAGE_SIZE)
    return html_response(
        render(
            "queues.html",
            viewer,
            page="queues",
            stream="/api/events",
            queues=states.queues,
            **_pager("/queues", skip, len(states.queues)),
        )
    )


@get("/tenants", opt={"query_parameters": ("offset",)}, name="tenants")
async def tenants_page(
    tq: NamedDependency[TaskQueue], viewer: NamedDependency[Viewer], offset: FromQuery[str] = ""
) -> Response[str]:
    """Every tenant that has (or had) a quota or has a rate limit on starts,
    and what it uses of them (one that never had either is not counted:
    README "Quotas")."""
    operator_only(viewer)
    skip = _offset(offset)
    tenants = await tq.tenants(offset=skip, limit=LIST_PAGE_SIZE)
    return html_response(
        render(
            "tenants.html",
            viewer,
            page="tenants",
            stream="/api/events",
            tenants=tenants,
            **_pager("/tenants", skip, len(tenants)),
        )
    )


@get("/workers", opt={"query_parameters": ("offset",)}, name="workers")
async def workers_page(
    tq: NamedDependency[TaskQueue], viewer: NamedDependency[Viewer], offset: FromQuery[str] = ""
) -> Response[str]:
    skip = _offset(offset)
    workers = await tq.workers(offset=skip, limit=LIST_PAGE_SIZE)
    return html_response(
        render(
            "workers.html",
            viewer,
            page="workers",
            stream="/api/events",
            workers=workers,
            now=await tq.views.now(),
            **_pager("/workers", skip, len(workers)),
        )
    )
