"""Pages of the lists that have no natural cursor (queues, workers, failure
groups): ``limit`` and ``offset`` in the query, and the next page's address
in a ``Link: <...>; rel="next"`` header (RFC 8288), so the body stays the
plain list it always was."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request
from litestar.params import QueryParameter

from taskqueue.limits import MAX_OFFSET, MAX_PAGE_SIZE

PAGE_PARAMETERS = ("limit", "offset")
PAGE_DESCRIPTION = (
    "Paged with limit and offset; when a page comes back full, a "
    '`Link: <...>; rel="next"` header gives the next one.'
)

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE_SIZE, description="at most this many")]
Offset = Annotated[
    int, QueryParameter(ge=0, le=MAX_OFFSET, description="skip this many (the next page)")
]


def next_page(request: Request[Any, Any, Any], offset: int, limit: int, got: int) -> dict[str, str]:
    """The Link header to the next page, when this one came back full."""
    if got < limit:
        return {}
    query = {k: v for k, v in request.query_params.items() if k != "offset"}
    query["offset"] = str(offset + got)
    return {"link": f'<{request.url.path}?{urlencode(query)}>; rel="next"'}
