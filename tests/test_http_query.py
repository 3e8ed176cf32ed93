"""Query parameters (taskqueue.http.query): a route answers only the ones it
declares in ``opt["query_parameters"]``. So every one its handler takes must
be declared there (else the route refuses its own parameters with 422), and
every one declared must be read (else it is accepted and ignored)."""

from __future__ import annotations

import msgspec
import pytest
from litestar.params import QueryParameter
from litestar.routes import HTTPRoute

from taskqueue.app import create_app
from taskqueue.config import Settings
from tests.api_helpers import api_client

# Pages that read their filters from the request itself (the Tasks page
# keeps them as one TaskQuery), so their handlers take none by name.
READ_FROM_THE_REQUEST = {"/tasks"}


def _routes_taking_query_parameters() -> list[tuple[str, set[str], tuple[str, ...] | str]]:
    """Each GET route that takes or declares query parameters: its path,
    their names as a client sends them, and what the route declares. Built
    without a database (the app connects only when it starts)."""
    app = create_app(Settings(database_url="postgresql://nobody@127.0.0.1:1/none"))
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if "GET" not in handler.http_methods:
                continue
            taken = {
                field.kwarg_definition.name or name
                for name, field in handler.parsed_fn_signature.parameters.items()
                if isinstance(field.kwarg_definition, QueryParameter)
            }
            declared = handler.opt.get("query_parameters", ())
            if taken or declared:
                found.append((route.path, taken, declared))
    return found


def test_every_route_declares_the_query_parameters_it_takes() -> None:
    routes = _routes_taking_query_parameters()
    # The check sees the routes' parameters (not a vacuous pass).
    assert ("/api/tasks/{task_id:str}/result", {"wait"}, ("wait",)) in routes
    undeclared = {
        path: sorted(taken - set(declared))
        for path, taken, declared in routes
        if declared != "*" and taken - set(declared)
    }
    assert undeclared == {}


def test_no_route_declares_a_parameter_it_ignores() -> None:
    # A declared name the handler never reads would be accepted and quietly
    # return everything: what refusing unknown parameters is there to stop.
    from taskqueue.web.pages import TASK_FILTERS, TaskQuery

    ignored = {
        path: sorted(set(declared) - taken)
        for path, taken, declared in _routes_taking_query_parameters()
        if declared != "*" and path not in READ_FROM_THE_REQUEST and set(declared) - taken
    }
    assert ignored == {}
    # The Tasks page reads every filter it declares, into its TaskQuery.
    assert set(TASK_FILTERS) == {f.name for f in msgspec.structs.fields(TaskQuery)}


@pytest.mark.parametrize("path", ["/api/workflows", "/api/schedules", "/api/stats"])
async def test_list_routes_answer_their_own_parameters_and_refuse_others(
    database_url: str, path: str
) -> None:
    known = {"/api/workflows": "limit=5", "/api/schedules": "limit=5", "/api/stats": "tenant=a"}
    async with api_client(database_url) as client:
        answered = await client.get(f"{path}?{known[path]}")
        assert answered.status_code == 200, answered.text
        refused = await client.get(f"{path}?limt=5")
        assert refused.status_code == 422
        assert refused.json()["field"] == "limt"
