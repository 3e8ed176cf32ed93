"""Loading the statements: one per file in taskqueue/queries/, read once,
with the fragments they include spliced in; and the types that run them.

A statement whose file carries a ``-- write-path: <role>, ...`` line changes
tasks or their history. It runs inside a SECURITY DEFINER function that
``taskqueue migrate`` makes from the file (store/write_path.py), because the
roles the product runs as may not write those tables themselves; what the
store sends for it is the call of that function, with the same parameters
and the same result columns."""

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


# A line of its own naming the deploy roles (taskqueue_<role>) that may run
# the statement: it joins the write path.
_WRITE_PATH = re.compile(r"^-- write-path:(?P<roles>[^\n]*)$", re.MULTILINE)
_ROLE = re.compile(r"[a-z][a-z0-9_]*")
# A line of its own giving the write-path function a planner setting for its
# statement, e.g. ``-- write-path-set: enable_seqscan = off``: the function's
# plan is cached per session, and one made while a table was empty (a fresh
# install) would otherwise scan that table for as long as the session lives.
_WRITE_PATH_SET = re.compile(r"^-- write-path-set:(?P<setting>[^\n]*)$", re.MULTILINE)
# A line of its own naming the migration the statement needs (a column it
# added): a schema migrated by an older release's partial migrations gets
# no function for it, e.g. ``-- write-path-requires: 0021_sealed_by_workers``.
_WRITE_PATH_REQUIRES = re.compile(r"^-- write-path-requires: (?P<migration>\S+)$", re.MULTILINE)
_SETTING = re.compile(r"(?P<name>enable_[a-z]+|plan_cache_mode) = (?P<value>[a-z_]+)")
_PLACEHOLDER = re.compile(r"\$(\d+)")
_COMMENT = re.compile(r"--[^\n]*")


@cache
def query(name: str) -> str:
    """What runs for queries/<name>.sql: the statement, its includes
    expanded; for a write-path statement, the call of its function."""
    if write_path_roles(name) is None:
        return statement(name)
    args = ", ".join(f"${n}" for n in range(1, placeholders(name) + 1))
    return f"SELECT * FROM taskqueue.{function_name(name)}({args})"


@cache
def statement(name: str) -> str:
    """The statement in queries/<name>.sql, its includes expanded."""
    return _INCLUDE.sub(_fragment_for_line, _read(f"{name}.sql"))


@cache
def write_path_roles(name: str) -> tuple[str, ...] | None:
    """The roles named by the file's ``-- write-path:`` line (``api``,
    ``worker``: deploy roles taskqueue_api, taskqueue_worker), None when it
    has none. Read from the file itself, never from a fragment."""
    found = _WRITE_PATH.findall(_read(f"{name}.sql"))
    if not found:
        return None
    if len(found) > 1:
        raise ValueError(f"{name}.sql has more than one write-path line")
    roles = tuple(role.strip() for role in found[0].split(","))
    if not all(_ROLE.fullmatch(role) for role in roles):
        raise ValueError(f"{name}.sql: write-path names roles like `api, worker`: {found[0]!r}")
    return roles


@cache
def write_path_settings(name: str) -> tuple[tuple[str, str], ...]:
    """The planner settings named by the file's ``-- write-path-set:`` lines
    (only ``enable_*`` and ``plan_cache_mode``), for its function's SET clause."""
    settings = []
    for line in _WRITE_PATH_SET.findall(_read(f"{name}.sql")):
        found = _SETTING.fullmatch(line.strip())
        if found is None:
            raise ValueError(
                f"{name}.sql: write-path-set takes `enable_<x> = on|off` or"
                f" `plan_cache_mode = <mode>`: {line.strip()!r}"
            )
        settings.append((found["name"], found["value"]))
    return tuple(settings)


@cache
def write_path_requires(name: str) -> str | None:
    """The migration named by the file's ``-- write-path-requires:`` line."""
    found = _WRITE_PATH_REQUIRES.findall(_read(f"{name}.sql"))
    if len(found) > 1:
        raise ValueError(f"{name}.sql has more than one write-path-requires line")
    return found[0] if found else None


def function_name(name: str) -> str:
    """The write-path function of queries/<name>.sql, in schema taskqueue."""
    return f"write_{name}"


def placeholders(name: str) -> int:
    """How many parameters the statement takes (its highest $n outside comments)."""
    code = _COMMENT.sub("", statement(name))
    return max((int(n) for n in _PLACEHOLDER.findall(code)), default=0)


def write_path_statements() -> list[str]:
    """Every statement file that carries a write-path line, sorted."""
    names = (
        path.name.removesuffix(".sql")
        for path in resources.files("taskqueue.queries").iterdir()
        if path.name.endswith(".sql") and not path.name.startswith("_")
    )
    return sorted(name for name in names if write_path_roles(name) is not None)


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
