"""Loading the statements: one per file in taskqueue/queries/, read once,
with the fragments they include spliced in; and the types that run them."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A pool and a connection both run statements; a connection also joins the
# caller's transaction.
Connection = asyncpg.Connection | PoolConnectionProxy
Executor = Connection | asyncpg.Pool

# A line of its own naming a fragment: a file whose name starts with "_",
# holding SQL that several statements repeat on purpose. Fragments include
# nothing themselves, so what runs is one step from what is on disk.
_INCLUDE = re.compile(r"^(?P<indent>[ \t]*)-- include: (?P<name>\S+)[ \t]*$", re.MULTILINE)


@cache
def query(name: str) -> str:
    """The statement in queries/<name>.sql, its includes expanded."""
    return _INCLUDE.sub(_fragment_for_line, _read(f"{name}.sql"))


def _fragment_for_line(match: re.Match[str]) -> str:
    name, indent = match["name"], match["indent"]
    text = fragment(name)
    # Indented like the line it replaces, so the expanded statement reads as
    # one piece (in logs, pg_stat_statements, EXPLAIN).
    return "\n".join(indent + line if line else line for line in text.splitlines())


@cache
def fragment(name: str) -> str:
    """A fragment's text, as an include line receives it."""
    if not (name.startswith("_") and name.endswith(".sql")):
        raise ValueError(f"an include names a fragment, _<name>.sql, not {name!r}")
    try:
        text = _read(name)
    except FileNotFoundError:
        raise ValueError(f"no query fragment {name!r}") from None
    if _INCLUDE.search(text):
        raise ValueError(f"fragment {name!r} includes another; fragments cannot nest")
    return text.rstrip("\n")


def _read(filename: str) -> str:
    return resources.files("taskqueue.queries").joinpath(filename).read_text()
