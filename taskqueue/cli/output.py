"""What the command line shows and how a command ends: tables, JSON, times
(printed, and read from options that must carry a zone), the one-line error
with its exit code, and one client session per command.

Every command prints through here, so a rule about output (say, escaping what
a task's error message holds) has one place to go."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

import msgspec

from taskqueue.config import ConfigError, Settings, mask_password
from taskqueue.embedded import EmbeddedPostgresError
from taskqueue.errors import TaskQueueError
from taskqueue.registry import load_registry
from taskqueue.text import escape_controls

if TYPE_CHECKING:
    from taskqueue.client import TaskQueue

T = TypeVar("T")

logger = logging.getLogger("taskqueue")

# Errors the user can fix from the message alone: exit 2, no type name.
_EXPLAINED = (ConfigError, TaskQueueError, EmbeddedPostgresError)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Rows as left-aligned columns under ``header``, control characters escaped."""
    cells = [tuple("" if cell is None else escape_controls(str(cell)) for cell in r) for r in rows]
    lines = [tuple(header), *cells]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def emit_json(value: object) -> None:
    """``value`` as indented JSON, for ``--json`` and single results."""
    print(msgspec.json.format(msgspec.json.encode(value)).decode())


def json_line(value: object) -> str:
    """``value`` as compact JSON on one line (a stream, or a table cell)."""
    return msgspec.json.encode(value).decode()


def when(value: datetime | None) -> str:
    """A time as tables show it (the zone the database gave it in: UTC)."""
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def zoned(text: str | None, option: str) -> datetime | None:
    """An option's ISO 8601 time, which must name its zone: a bare time would
    mean one thing on a laptop and another on a server."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option}: not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        raise ConfigError(f"{option}: give a time zone (e.g. 2026-01-31T12:00:00Z)")
    return value


def with_client(
    settings: Settings,
    work: Callable[[TaskQueue], Awaitable[T]],
    *,
    handlers: bool = False,
) -> T:
    """Connect a TaskQueue, run ``work`` with it, close it, and return what
    ``work`` returned. ``handlers``: load TASKQUEUE_HANDLERS so the task types
    they declare may be enqueued; the operator's commands need none. Errors
    propagate to :func:`failed` through ``main``."""
    from taskqueue.client import TaskQueue

    async def session() -> T:
        registry = load_registry(settings.handlers) if handlers else None
        async with await TaskQueue.connect(settings.require_database_url(), registry) as tq:
            return await work(tq)

    return asyncio.run(session())


def failed(exc: Exception, args: argparse.Namespace, *, json_logs: bool) -> int:
    """Report a command's error on one line (the traceback with -v) and
    return the exit code: 2 for what the user can fix, 1 otherwise."""
    if json_logs:  # every line of stderr stays a JSON object
        logger.error("taskqueue: error: %s", _one_line(exc, args), exc_info=args.verbose)
    else:
        if args.verbose:
            traceback.print_exc()
        print(f"taskqueue: error: {_one_line(exc, args)}", file=sys.stderr)
    return 2 if isinstance(exc, (*_EXPLAINED, ValueError)) else 1


def _one_line(exc: BaseException, args: argparse.Namespace) -> str:
    text = escape_controls(" ".join(str(exc).split()))
    if not isinstance(exc, _EXPLAINED):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        if not args.verbose:
            text += " (-v shows the traceback)"
    # Whatever the message quotes, never the database password.
    for url in (
        args.database_url,
        os.environ.get("DATABASE_URL"),
        os.environ.get("TASKQUEUE_DATABASE_URL"),
    ):
        if url:
            text = text.replace(url, mask_password(url))
    return text
