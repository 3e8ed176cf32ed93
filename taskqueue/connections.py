"""The caller's transaction: turning the connection a producer passes as
``connection=`` into one the store's statements run on, inside whatever
transaction that connection has open.

Sync (``taskqueue.sync``): a psycopg ``Connection``, a SQLAlchemy
``Connection`` or ``Session`` on the psycopg driver, a Django connection on
the postgresql backend with psycopg 3; and, when Django is configured that
way and no connection is given, Django's default connection, so that an
enqueue inside ``transaction.atomic()`` joins it.
Async (``taskqueue.TaskQueue``): an asyncpg connection as before, a psycopg
``AsyncConnection``, a SQLAlchemy ``AsyncConnection`` or ``AsyncSession``
(asyncpg or psycopg underneath).

SQLAlchemy and Django are imported only when the caller hands over one of
their objects: the base install needs neither."""

from __future__ import annotations

import sys
from typing import Any

import asyncpg
import psycopg
from asyncpg.pool import PoolConnectionProxy

from taskqueue import store
from taskqueue.errors import InvalidArgument
from taskqueue.store.adapters import (
    ForeignAsyncpg,
    PsycopgAsync,
    PsycopgSync,
    as_connection,
    begin_through_sqlalchemy,
)

_PSYCOPG_ONLY = (
    "taskqueue runs its statements through psycopg 3 here: use the "
    "postgresql+psycopg:// driver (not {driver})"
)


def sync_connection(connection: Any) -> store.Connection:
    """The store's view of a caller's sync connection; its transaction (or
    autocommit) is the caller's to finish."""
    if isinstance(connection, psycopg.Connection):
        return as_connection(PsycopgSync(connection))
    module = type(connection).__module__
    if module.startswith("sqlalchemy."):
        return as_connection(PsycopgSync(_sqlalchemy_driver_connection(connection)))
    if _is_django(connection):
        return as_connection(PsycopgSync(_django_driver_connection(connection)))
    raise InvalidArgument(
        "connection",
        "a psycopg Connection, a SQLAlchemy Connection or Session, or a Django "
        f"connection, not {type(connection).__name__}",
    )


async def async_connection(connection: Any) -> store.Connection:
    """The store's view of a caller's async connection."""
    if isinstance(connection, asyncpg.Connection | PoolConnectionProxy):
        return connection  # taskqueue's own pools and db.connect() set its codecs
    if isinstance(connection, psycopg.AsyncConnection):
        return as_connection(PsycopgAsync(connection))
    if type(connection).__module__.startswith("sqlalchemy."):
        from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

        if isinstance(connection, AsyncSession):
            connection = await connection.connection()
        if isinstance(connection, AsyncConnection):
            fairy = await connection.get_raw_connection()
            if getattr(fairy.dbapi_connection, "_transaction", False) is None:
                await begin_through_sqlalchemy(connection)
            raw = fairy.driver_connection
            if isinstance(raw, psycopg.AsyncConnection):
                return as_connection(PsycopgAsync(raw))
            if isinstance(raw, asyncpg.Connection):
                # SQLAlchemy's json codecs on it, not taskqueue's.
                return as_connection(ForeignAsyncpg(raw))
            raise InvalidArgument(
                "connection", _PSYCOPG_ONLY.format(driver=type(raw).__module__) + " or asyncpg"
            )
    raise InvalidArgument(
        "connection",
        "an asyncpg or psycopg AsyncConnection, or a SQLAlchemy AsyncConnection or "
        f"AsyncSession, not {type(connection).__name__}",
    )


def django_default() -> Any | None:
    """Django's default connection when Django is set up on PostgreSQL, else
    None. Never imports Django: an app that uses it has imported it already."""
    conf = sys.modules.get("django.conf")
    if conf is None or not conf.settings.configured:
        return None
    from django.db import DEFAULT_DB_ALIAS, connections

    if connections.settings[DEFAULT_DB_ALIAS]["ENGINE"] != "django.db.backends.postgresql":
        return None
    return connections[DEFAULT_DB_ALIAS]


def _sqlalchemy_driver_connection(connection: Any) -> psycopg.Connection[Any]:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

    if isinstance(connection, Session):
        # The session's connection, in the session's transaction (begun if need be).
        connection = connection.connection()
    if not isinstance(connection, Connection):
        raise InvalidArgument(
            "connection", f"a SQLAlchemy Connection or Session, not {type(connection).__name__}"
        )
    raw = connection.connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        raise InvalidArgument("connection", _PSYCOPG_ONLY.format(driver=type(raw).__module__))
    return raw


def _is_django(connection: Any) -> bool:
    module = type(connection).__module__
    return module.startswith("django.") and hasattr(connection, "ensure_connection")


def _django_driver_connection(connection: Any) -> psycopg.Connection[Any]:
    if connection.vendor != "postgresql":
        raise InvalidArgument(
            "connection", f"a Django connection to PostgreSQL, not {connection.vendor}"
        )
    connection.ensure_connection()
    raw = connection.connection
    if not isinstance(raw, psycopg.Connection):
        raise InvalidArgument(
            "connection",
            "Django's postgresql backend on psycopg 3 (pip install psycopg), not psycopg2",
        )
    return raw
