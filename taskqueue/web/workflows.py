"""The dashboard's workflow pages: the list of workflows with their status,
and one workflow drawn as its graph, layer by layer (a task sits one layer
after its deepest parent), each node showing its live status and linking
to its task page. Drawn on the server like every other page; the page
script redraws it when the event stream says something changed."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath

from taskqueue.client import TaskQueue
from taskqueue.store import WorkflowTask
from taskqueue.validation import as_task_id
from taskqueue.web.headers import html_response
from taskqueue.web.render import render
from taskqueue.web.session import Viewer
from taskqueue.workflows import WorkflowNotFound, summary_status

MAX_NODES = 2_000  # drawn; a bigger graph shows its first nodes and says so


def layers(tasks: list[WorkflowTask]) -> list[list[WorkflowTask]]:
    """Tasks grouped by depth: roots first, each task one layer below its
    deepest parent in the workflow (tasks come in creation order, and a
    graph's parents are created with their children, so a parent missing
    from ``depth`` when its child is placed is outside the workflow)."""
    depth: dict[object, int] = {}
    by_id = {t.id: t for t in tasks}
    pending = list(tasks)
    while pending:
        later = []
        for t in pending:
            inside = [p for p in t.depends_on if p in by_id]
            if all(p in depth for p in inside):
                depth[t.id] = 1 + max((depth[p] for p in inside), default=-1)
            else:
                later.append(t)
        if len(later) == len(pending):  # unreachable for a checked graph
            for t in later:
                depth[t.id] = 0
            break
        pending = later
    grouped: dict[int, list[WorkflowTask]] = {}
    for t in tasks:
        grouped.setdefault(depth[t.id], []).append(t)
    return [grouped[d] for d in sorted(grouped)]


@get("/workflows", opt={"query_parameters": ()}, name="workflows")
async def workflows_page(
    tq: NamedDependency[TaskQueue], viewer: NamedDependency[Viewer]
) -> Response[str]:
    found = await tq.workflows.list(limit=200)
    return html_response(
        render(
            "workflows.html",
            viewer,
            page="workflows",
            stream="/api/events",
            workflows=[(w, summary_status(w)) for w in found],
        )
    )


@get("/workflows/{workflow_id:str}", opt={"query_parameters": ()}, name="workflow")
async def workflow_page(
    tq: NamedDependency[TaskQueue], viewer: NamedDependency[Viewer], workflow_id: FromPath[str]
) -> Response[str]:
    found = as_task_id(workflow_id)
    if found is None:
        raise WorkflowNotFound(repr(workflow_id[:64]))
    wf = await tq.workflows.get(found)
    shown = wf.tasks[:MAX_NODES]
    counts: dict[str, int] = {}
    for t in wf.tasks:
        counts[t.status] = counts.get(t.status, 0) + 1
    return html_response(
        render(
            "workflow.html",
            viewer,
            page="workflow",
            stream="/api/events",
            workflow=wf,
            layers=layers(shown),
            counts=sorted(counts.items()),
            hidden=len(wf.tasks) - len(shown),
        )
    )
