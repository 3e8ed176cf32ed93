"""Pages from Jinja templates shipped in the package, with autoescaping on
everywhere: every value from a task (payload, result, errors, names) reaches
the page as text, never as markup. Also the formatting the templates share."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import quote

import jinja2
import msgspec

from taskqueue.web.session import Viewer

COLLAPSE_BYTES = 2000  # payloads and results longer than this start collapsed
COLLAPSE_LINES = 30

_pretty_encoder = msgspec.json.Encoder(order="sorted")


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("taskqueue.web", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["ago"] = ago
    env.filters["seconds"] = seconds
    env.filters["number"] = number
    env.filters["path_part"] = path_part
    env.globals["asset"] = asset_url
    return env


def render(template: str, viewer: Viewer, **context: Any) -> str:
    return environment().get_template(template).render(viewer=viewer, **context)


class PrettyJson(msgspec.Struct, frozen=True):
    text: str
    size: int
    collapsed: bool


def pretty_json(value: Any) -> PrettyJson:
    """``value`` as indented JSON text (for a <pre>), and whether it is large
    enough to start collapsed."""
    raw = _pretty_encoder.encode(value)
    text = msgspec.json.format(raw, indent=2).decode()
    collapsed = len(raw) > COLLAPSE_BYTES or text.count("\n") > COLLAPSE_LINES
    return PrettyJson(text=text, size=len(raw), collapsed=collapsed)


def when(value: datetime | None) -> str:
    """A UTC timestamp to the second, the same on every page."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "—"
    return seconds(((now or datetime.now(UTC)) - value).total_seconds()) + " ago"


def seconds(value: float | None) -> str:
    """A duration short enough for a table cell: 850 ms, 12.3 s, 4 min, 2.5 h."""
    if value is None or not math.isfinite(value):
        return "—"
    value = max(value, 0.0)
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    if value < 3600:
        return f"{value / 60:.0f} min"
    if value < 86400 * 2:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} d"


def path_part(value: str) -> str:
    """``value`` as one segment of a URL path (a queue name with a slash too)."""
    return quote(value, safe="")


def number(value: int) -> str:
    return f"{value:,}"


@cache
def static_bytes(name: str) -> bytes | None:
    """A file shipped in taskqueue/web/static, or None when there is none."""
    if "/" in name or "\\" in name or name.startswith("."):
        return None
    try:
        return resources.files("taskqueue.web").joinpath("static", name).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


@cache
def asset_url(name: str) -> str:
    """The URL of a static file, with its content hash so that browsers may
    cache it for good and still fetch a changed one."""
    content = static_bytes(name)
    if content is None:
        raise LookupError(f"no static file {name!r}")
    return f"/static/{name}?v={hashlib.sha256(content).hexdigest()[:12]}"
