"""The write path: one SECURITY DEFINER function per statement file that
carries a ``-- write-path: <role>, ...`` line, (re)made by ``taskqueue
migrate`` after the migrations.

The deploy roles (deploy/postgres/roles.sql) may not write tasks nor their
history themselves; they may only run these functions, each granted to the
roles its file names. A function is the file's statement, unchanged: its
parameters and result columns are read by preparing the statement, its body
is ``RETURN QUERY <statement>`` in PL/pgSQL (whose plans are cached per
session, as a prepared statement's are), it runs as its owner (the role
that migrates: the schema's owner) with ``search_path`` pinned, so nothing
a caller puts on its path is found first. The store calls it instead of
sending the statement (store._sql.query), so the statement text still lives
in one place. taskqueue.write_statements lists what was made, for roles.sql
to grant and for the next run to drop what lost its line."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.pq import ExecStatus
from psycopg.rows import TupleRow

from taskqueue.store._sql import (
    function_name,
    placeholders,
    statement,
    write_path_requires,
    write_path_roles,
    write_path_settings,
)
from taskqueue.store._sql import write_path_statements as marked_statements

# Result columns of type void (a bare pg_notify()) cannot come out of a
# PL/pgSQL function: such a statement must say what it sent instead
# (count(pg_notify(...))).
_VOID = "void"
_UNKNOWN = "unknown"


class WritePathError(RuntimeError):
    """A marked statement cannot become a function (its file says why)."""


@dataclass(frozen=True)
class Shape:
    """A statement's parameter types and result columns, as the server reads them."""

    parameters: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]


def install(conn: psycopg.Connection[TupleRow]) -> list[str]:
    """Make or update the function of every marked statement, drop those of
    statements no longer marked; returns the functions made or changed.
    Runs in ``conn``'s transaction."""
    # Read on the caller's path: yoyo keeps its table there.
    applied = {str(row[0]) for row in conn.execute(statement("applied_migrations")).fetchall()}
    conn.execute("SET LOCAL search_path = pg_catalog, pg_temp")
    if conn.execute("SELECT to_regclass('taskqueue.write_statements')").fetchone() == (None,):
        return []  # migrations older than 0015_write_path (a partial migrations dir)
    changed = []
    # A statement that needs a later migration than a partial migrations
    # dir (an older release) applied gets no function there.
    names = [
        name
        for name in marked_statements()
        if write_path_requires(name) is None or write_path_requires(name) in applied
    ]
    for name in names:
        if _define(conn, name):
            changed.append(function_name(name))
    _drop_unmarked(conn, names)
    return changed


def shape(conn: psycopg.Connection[TupleRow], name: str) -> Shape:
    """Prepare the statement (unnamed, never run) and read its shape."""
    text = statement(name)
    prepared = conn.pgconn.prepare(b"", text.encode())
    if prepared.status != ExecStatus.COMMAND_OK:
        message = (prepared.error_message or b"").decode(errors="replace").strip()
        raise WritePathError(f"queries/{name}.sql does not prepare: {message}")
    described = conn.pgconn.describe_prepared(b"")
    if described.status != ExecStatus.COMMAND_OK:
        raise WritePathError(f"queries/{name}.sql cannot be described")
    oids = [described.param_type(i) for i in range(described.nparams)]
    names = [(described.fname(i) or b"").decode() for i in range(described.nfields)]
    fields = [(described.ftype(i), described.fmod(i)) for i in range(described.nfields)]
    parameters = tuple(_type_names(conn, [(oid, -1) for oid in oids]))
    columns = tuple(zip(names, _type_names(conn, fields), strict=True))
    _check(name, parameters, columns)
    return Shape(parameters, columns)


def _type_names(conn: psycopg.Connection[TupleRow], types: list[tuple[int, int]]) -> list[str]:
    if not types:
        return []
    rows = conn.execute(
        "SELECT format_type(t.oid, t.mod) FROM unnest(%s::oid[], %s::int[])"
        " WITH ORDINALITY AS t(oid, mod, n) ORDER BY t.n",
        ([oid for oid, _ in types], [mod for _, mod in types]),
    ).fetchall()
    return [str(row[0]) for row in rows]


def _check(name: str, parameters: tuple[str, ...], columns: tuple[tuple[str, str], ...]) -> None:
    where = f"queries/{name}.sql"
    if len(parameters) != placeholders(name):
        raise WritePathError(
            f"{where}: the server counts {len(parameters)} parameters, the file"
            f" {placeholders(name)} ($n in a comment?)"
        )
    if _UNKNOWN in parameters:
        raise WritePathError(f"{where}: cast every parameter ($n::type): one has no type")
    seen: set[str] = set()
    for column, type_name in columns:
        if type_name == _VOID:
            raise WritePathError(
                f"{where}: result column {column!r} is void; return what was sent"
                " instead, e.g. count(pg_notify(...))"
            )
        if column in seen or column == "?column?":
            raise WritePathError(f"{where}: name every result column once ({column!r})")
        seen.add(column)


def _body(name: str, columns: tuple[tuple[str, str], ...]) -> str:
    text = statement(name).rstrip().rstrip(";")
    if not columns:
        # A statement without result rows reports how many rows it changed.
        return (
            "\nDECLARE changed bigint;\nBEGIN\n"
            f"{text};\nGET DIAGNOSTICS changed = ROW_COUNT;\n"
            "RETURN QUERY SELECT changed;\nEND\n"
        )
    # Result columns are PL/pgSQL variables; the statement's names mean columns.
    return f"\n#variable_conflict use_column\nBEGIN\nRETURN QUERY\n{text};\nEND\n"


def _define(conn: psycopg.Connection[TupleRow], name: str) -> bool:
    found = shape(conn, name)
    columns = found.columns or (("changed", "bigint"),)
    function = sql.SQL("taskqueue.{}").format(sql.Identifier(function_name(name)))
    arguments = ", ".join(found.parameters)
    result = "TABLE(" + ", ".join(f"{_quote(c)} {t}" for c, t in columns) + ")"
    body = _body(name, found.columns)
    existing = conn.execute(
        "SELECT p.oid::regprocedure::text, pg_get_function_identity_arguments(p.oid),"
        " pg_get_function_result(p.oid), p.prosrc"
        " FROM pg_proc p WHERE p.pronamespace = 'taskqueue'::regnamespace AND p.proname = %s",
        (function_name(name),),
    ).fetchone()
    if existing is not None:
        signature, old_arguments, old_result, old_body = existing
        if (old_arguments, old_result, old_body) == (arguments, _as_shown(conn, columns), body):
            _register(conn, name, signature)
            return False
    # The settings' lines are in the body (the statement's comments), so a
    # change to them makes the bodies differ above.
    settings = sql.SQL("").join(
        sql.SQL(" SET {} = {}").format(sql.Identifier(setting), sql.Literal(value))
        for setting, value in write_path_settings(name)
    )
    create = sql.SQL(
        "CREATE OR REPLACE FUNCTION {}({}) RETURNS {} LANGUAGE plpgsql VOLATILE"
        " SECURITY DEFINER SET search_path = pg_catalog, pg_temp{} AS {}"
    ).format(function, sql.SQL(arguments), sql.SQL(result), settings, sql.Literal(body))
    try:
        with conn.transaction():
            conn.execute(create)
    except psycopg.errors.InvalidFunctionDefinition:
        # A new result type: CREATE OR REPLACE cannot change one. The grants
        # go with the old function; _grant gives them again.
        assert existing is not None
        conn.execute(sql.SQL("DROP FUNCTION {}").format(sql.SQL(existing[0])))
        conn.execute(create)
    signature = conn.execute(
        sql.SQL("SELECT {}::regprocedure::text").format(
            sql.Literal(f"taskqueue.{function_name(name)}({arguments})")
        )
    ).fetchone()[0]  # type: ignore[index]
    _grant(conn, name, signature)
    _register(conn, name, signature)
    return True


def _as_shown(conn: psycopg.Connection[TupleRow], columns: tuple[tuple[str, str], ...]) -> str:
    """The result type as pg_get_function_result() shows it."""
    shown = conn.execute(
        "SELECT 'TABLE(' || string_agg(quote_ident(c.name) || ' ' || c.type, ', '"
        " ORDER BY c.n) || ')' FROM unnest(%s::text[], %s::text[])"
        " WITH ORDINALITY AS c(name, type, n)",
        ([c for c, _ in columns], [t for _, t in columns]),
    ).fetchone()
    return str(shown[0]) if shown else ""


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _grant(conn: psycopg.Connection[TupleRow], name: str, signature: str) -> None:
    """Nobody but the owner may run a new function, then the deploy roles
    its file names (when they exist: the default install has none)."""
    target = sql.SQL(signature)
    conn.execute(sql.SQL("REVOKE ALL ON FUNCTION {} FROM PUBLIC").format(target))
    for role in write_path_roles(name) or ():
        exists = conn.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", (f"taskqueue_{role}",)
        ).fetchone()
        if exists:
            conn.execute(
                sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(
                    target, sql.Identifier(f"taskqueue_{role}")
                )
            )


def _register(conn: psycopg.Connection[TupleRow], name: str, signature: str) -> None:
    conn.execute(
        "INSERT INTO taskqueue.write_statements (name, function, roles) VALUES (%s, %s, %s)"
        " ON CONFLICT (name) DO UPDATE SET function = EXCLUDED.function, roles = EXCLUDED.roles",
        (name, signature, list(write_path_roles(name) or ())),
    )


def _drop_unmarked(conn: psycopg.Connection[TupleRow], names: list[str]) -> None:
    gone = conn.execute(
        "DELETE FROM taskqueue.write_statements WHERE name <> ALL(%s) RETURNING function",
        (names,),
    ).fetchall()
    for (signature,) in gone:
        conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}").format(sql.SQL(signature)))
