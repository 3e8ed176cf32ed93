"""Query parameters a route does not declare are refused, on the API and the
dashboard alike."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from litestar import Request

from taskqueue.http.errors import ApiError


async def refuse_unknown_query_parameters(request: Request[Any, Any, Any]) -> None:
    """A misspelt filter must not quietly return everything: every query
    parameter has to be one the route declares in ``opt["query_parameters"]``
    ("*": any), and none may be given twice (only one value would count)."""
    if not request.scope["query_string"]:
        return
    known: tuple[str, ...] | str = request.route_handler.opt.get("query_parameters", ())
    if known == "*":
        return
    # In the order given (the parsed query's own order groups repeats).
    names = [name for name, _ in parse_qsl(request.scope["query_string"].decode("latin-1"), True)]
    unknown = [name for name in dict.fromkeys(names) if name not in known]
    if unknown:
        listed = ", ".join(repr(name[:64]) for name in unknown[:10])
        takes = f"it takes {', '.join(known)}" if known else "it takes none"
        raise ApiError(
            422,
            "unknown_parameter",
            f"unknown query parameter {listed}: {takes}",
            unknown[0][:64],
        )
    repeated = [name for name in dict.fromkeys(names) if names.count(name) > 1]
    if repeated:
        raise ApiError(
            422,
            "invalid_field",
            f"{repeated[0][:64]}: given more than once; give it once",
            repeated[0][:64],
        )
