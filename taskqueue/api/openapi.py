"""OpenAPI pieces Litestar cannot infer: request bodies that we decode
ourselves (strictly, with msgspec, so errors name the exact field) and the
bearer-token security scheme."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import msgspec
from litestar import Response, get
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, RedocRenderPlugin
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
    SecurityScheme,
)

from taskqueue import __version__
from taskqueue.http.errors import ErrorBody

BEARER = "BearerToken"
SECURITY: list[dict[str, list[str]]] = [{BEARER: []}]
REDOC_PATH = "/schema/redoc.standalone.js"


def _schema(node: Any, defs: dict[str, Any]) -> Schema:
    """msgspec's JSON Schema as Litestar's OpenAPI objects, references inlined
    (Litestar rebuilds components from its own registry, dropping ours)."""
    if "$ref" in node:
        return _schema(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    fields: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$defs":
            continue
        name = "".join(f"_{c.lower()}" if c.isupper() else c for c in key)
        if key == "properties":
            value = {prop: _schema(sub, defs) for prop, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            value = _schema(value, defs)
        elif key in ("anyOf", "oneOf", "allOf"):
            value = [_schema(sub, defs) for sub in value]
        elif key == "type":
            value = (
                [OpenAPIType(v) for v in value] if isinstance(value, list) else OpenAPIType(value)
            )
        fields[name] = value
    return Schema(**fields)


def schema_of(struct: type[msgspec.Struct]) -> Schema:
    document = msgspec.json.schema(struct)
    return _schema(document, document.get("$defs", {}))


def with_body(struct: type[msgspec.Struct], description: str) -> type[Operation]:
    """An Operation class whose request body is ``struct`` (JSON)."""
    schema = schema_of(struct)

    @dataclass
    class OperationWithBody(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                content={"application/json": OpenAPIMediaType(schema=schema)},
                description=description,
                required=True,
            )

    return OperationWithBody


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="taskqueue",
        version=__version__,
        description=(
            "Enqueue and inspect tasks. Errors share one JSON shape (ErrorBody). "
            "Bad values: 422 naming the field; malformed JSON: 400; unknown id: 404; "
            "state conflicts: 409; body over the limit: 413; a body that is not JSON: 415; "
            "request line and headers over 64 KiB: 431; database down: 503."
        ),
        path="/schema",
        # The page's script is served from the package: /schema works offline.
        render_plugins=[
            RedocRenderPlugin(js_url=REDOC_PATH, google_fonts=False, favicon="", path="/"),
            JsonRenderPlugin(),
        ],
        components=Components(
            security_schemes={
                BEARER: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="API token from TASKQUEUE_API_TOKENS, or an HS256 JWT",
                )
            },
        ),
    )


@cache
def _redoc_bytes() -> bytes:
    return resources.files("taskqueue.api").joinpath("static/redoc.standalone.js").read_bytes()


@get(REDOC_PATH, include_in_schema=False, sync_to_thread=False)
def redoc_script() -> Response[bytes]:
    """Redoc 2.5.4, vendored (static/redoc.LICENSE.txt): the docs page's only asset."""
    return Response(
        _redoc_bytes(),
        media_type="application/javascript",
        headers={"cache-control": "public, max-age=86400"},
    )


def error_responses(*codes: int) -> dict[int, ResponseSpec]:
    """The error responses an operation documents: 401, 403 and 503 always,
    and ``codes``."""
    described = {
        400: "malformed JSON",
        401: "missing or invalid bearer token",
        403: "the token lacks the needed scope",
        404: "no such task, queue or schedule (or not a task id)",
        409: "the task's status does not allow this",
        413: "request body over the size limit",
        415: "a request body that is not application/json",
        422: "a field or query parameter is invalid; `field` names it",
        503: "the database cannot be reached; nothing was changed",
    }
    return {
        code: ResponseSpec(data_container=ErrorBody, description=described[code])
        for code in (401, 403, 503, *codes)
    }
