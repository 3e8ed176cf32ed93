"""Running the store's statements on connections other than taskqueue's own
asyncpg pool: psycopg 3 (sync and async) and asyncpg connections whose JSON
codecs belong to another library (SQLAlchemy's asyncpg dialect).

Each adapter offers what the store calls on an asyncpg connection
(``fetch``, ``fetchrow``, ``fetchval``, ``execute``) and sends the very same
statement text: psycopg's raw cursors bind ``$n`` placeholders on the server,
as asyncpg does, so there is one copy of every statement and one copy of the
code that shapes its rows. JSON goes over the wire as msgspec encodes it,
whatever codecs the caller's connection was set up with.

The sync adapter's methods are coroutines that never suspend (their I/O
blocks), so ``run_sync`` drives a store coroutine to its end without an
event loop: the sync API runs the async API's own code."""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar, cast

import asyncpg
import msgspec
import psycopg
from psycopg import postgres
from psycopg.abc import Buffer
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format
from psycopg.rows import DictRow, dict_row
from psycopg.types.datetime import TimestamptzBinaryLoader, TimestamptzLoader

from taskqueue.store._sql import Connection, query

T = TypeVar("T")

_decode_json = msgspec.json.Decoder().decode
_encode_json = msgspec.json.Encoder().encode
_JSONB_VERSION = b"\x01"


class JsonDocument(bytes):
    """JSON text already encoded, sent as a ``json`` parameter (the bulk insert's)."""


class _RawJsonbDumper(Dumper):
    # msgspec.Raw holds JSON text that enqueue already checked: sent as it is.
    format = Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: Any) -> Buffer:
        return _JSONB_VERSION + bytes(obj)


class _RawJsonbTextDumper(Dumper):
    # What an array of them needs (arrays are dumped as text here).
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: Any) -> Buffer:
        return bytes(obj)


class _JsonDocumentDumper(Dumper):
    oid = postgres.types["json"].oid

    def dump(self, obj: Any) -> Buffer:
        return bytes(obj)


class _JsonLoader(Loader):
    def load(self, data: Buffer) -> Any:
        return _decode_json(data)


class _JsonBinaryLoader(_JsonLoader):
    format = Format.BINARY


class _JsonbBinaryLoader(Loader):
    format = Format.BINARY

    def load(self, data: Buffer) -> Any:
        return _decode_json(memoryview(data)[1:])


def use_msgspec(adapters: psycopg.adapt.AdaptersMap) -> None:
    """JSON in and out through msgspec, timestamptz as aware datetimes,
    whatever the connection was given before (Django loads jsonb as text,
    and naive datetimes when USE_TZ is off)."""
    adapters.register_dumper(msgspec.Raw, _RawJsonbTextDumper)
    adapters.register_dumper(msgspec.Raw, _RawJsonbDumper)
    adapters.register_dumper(JsonDocument, _JsonDocumentDumper)
    for name in ("json", "jsonb"):
        adapters.register_loader(name, _JsonLoader)
    adapters.register_loader("jsonb", _JsonbBinaryLoader)
    adapters.register_loader("json", _JsonBinaryLoader)
    adapters.register_loader("timestamptz", TimestamptzLoader)
    adapters.register_loader("timestamptz", TimestamptzBinaryLoader)


# What psycopg cannot dump as the statement's declared type on its own.
def _param(value: Any) -> Any:
    if type(value) is bytes:
        return JsonDocument(value)  # only the bulk insert's document is bytes
    if type(value) is list:
        return [_element(v) for v in value]
    if type(value) is dict:
        return msgspec.Raw(_encode_json(value))
    return value


def _element(value: Any) -> Any:
    return msgspec.Raw(_encode_json(value)) if type(value) is dict else value


def _params(args: Sequence[Any]) -> list[Any]:
    return [_param(a) for a in args]


class PsycopgAsync:
    """The store's statements on a psycopg ``AsyncConnection``, inside
    whatever transaction it has open. ``own``: the connection is
    taskqueue's, its adapters already set (``use_msgspec``); a caller's gets
    them per cursor and is otherwise left as it was."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], *, own: bool = False) -> None:
        self._conn = conn
        self._own = own

    async def _run(self, sql: str, args: Sequence[Any]) -> psycopg.AsyncRawCursor[DictRow]:
        cur = psycopg.AsyncRawCursor(self._conn, row_factory=dict_row)
        if not self._own:
            use_msgspec(cur.adapters)
        await cur.execute(sql, _params(args))
        return cur

    async def fetch(self, sql: str, *args: Any, **options: Any) -> list[DictRow]:
        async with await self._run(sql, args) as cur:
            return await cur.fetchall()

    async def fetchrow(self, sql: str, *args: Any, **options: Any) -> DictRow | None:
        async with await self._run(sql, args) as cur:
            return await cur.fetchone()

    async def fetchval(self, sql: str, *args: Any, **options: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else next(iter(row.values()))

    async def execute(self, sql: str, *args: Any, **options: Any) -> str:
        async with await self._run(sql, args) as cur:
            return cur.statusmessage or ""


class PsycopgSync:
    """The store's statements on a sync psycopg ``Connection``: coroutines
    that block instead of suspending, for ``run_sync``. ``own`` as in
    ``PsycopgAsync``."""

    def __init__(self, conn: psycopg.Connection[Any], *, own: bool = False) -> None:
        self._conn = conn
        self._own = own

    def _run(self, sql: str, args: Sequence[Any]) -> psycopg.RawCursor[DictRow]:
        cur = psycopg.RawCursor(self._conn, row_factory=dict_row)
        if not self._own:
            use_msgspec(cur.adapters)
        cur.execute(sql, _params(args))
        return cur

    async def fetch(self, sql: str, *args: Any, **options: Any) -> list[DictRow]:
        with self._run(sql, args) as cur:
            return cur.fetchall()

    async def fetchrow(self, sql: str, *args: Any, **options: Any) -> DictRow | None:
        with self._run(sql, args) as cur:
            return cur.fetchone()

    async def fetchval(self, sql: str, *args: Any, **options: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else next(iter(row.values()))

    async def execute(self, sql: str, *args: Any, **options: Any) -> str:
        with self._run(sql, args) as cur:
            return cur.statusmessage or ""


class ForeignAsyncpg:
    """The store's statements on an asyncpg connection set up by another
    library: SQLAlchemy's asyncpg dialect gives json/jsonb codecs that take
    JSON text as ``str`` (and decode results itself), where taskqueue's own
    take msgspec values."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any, **options: Any) -> list[Any]:
        return cast(list[Any], await self._conn.fetch(sql, *_texts(args), **options))

    async def fetchrow(self, sql: str, *args: Any, **options: Any) -> Any:
        return await self._conn.fetchrow(sql, *_texts(args), **options)

    async def fetchval(self, sql: str, *args: Any, **options: Any) -> Any:
        return await self._conn.fetchval(sql, *_texts(args), **options)

    async def execute(self, sql: str, *args: Any, **options: Any) -> str:
        return await self._conn.execute(sql, *_texts(args), **options)


def _text(value: Any) -> Any:
    if isinstance(value, msgspec.Raw | bytes):
        return bytes(value).decode()
    if type(value) is dict:
        return _encode_json(value).decode()
    if type(value) is list:
        return [_text(v) for v in value]
    return value


def _texts(args: Sequence[Any]) -> list[Any]:
    return [_text(a) for a in args]


async def begin_through_sqlalchemy(connection: Any) -> None:
    """Open the transaction of a SQLAlchemy ``AsyncConnection`` on asyncpg:
    its adapter sends BEGIN with the first statement that goes through it,
    not before, and statements sent to the raw connection do not count."""
    await connection.exec_driver_sql(query("ping"))


Adapter = PsycopgAsync | PsycopgSync | ForeignAsyncpg


def as_connection(adapter: Adapter) -> Connection:
    """The adapter where the store's functions expect an asyncpg connection:
    it answers the same calls, with rows that read the same (``row[name]``)."""
    return cast(Connection, adapter)


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a store coroutine whose awaits never suspend (they reach only a
    ``PsycopgSync``) to its end, without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coroutine.close()
    raise RuntimeError("a statement suspended: a sync connection must back every await")


__all__ = [
    "Adapter",
    "ForeignAsyncpg",
    "JsonDocument",
    "PsycopgAsync",
    "PsycopgSync",
    "as_connection",
    "begin_through_sqlalchemy",
    "run_sync",
    "use_msgspec",
]
