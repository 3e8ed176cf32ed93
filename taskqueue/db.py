"""Connections to PostgreSQL: the asyncpg pool with its jsonb codec (made to
suit a pooler in front, see taskqueue.pooler), the direct connection for
maintenance, and schema migrations through yoyo."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import asyncpg
import msgspec

from taskqueue.errors import TaskQueueError
from taskqueue.pooler import Pooler

_JSONB_VERSION = b"\x01"  # jsonb's binary wire format is a version byte, then JSON text
_encode_json = msgspec.json.Encoder().encode
_decode_json = msgspec.json.Decoder().decode


def _encode_jsonb(value: Any) -> bytes:
    return _JSONB_VERSION + _encode_json(value)


def _decode_jsonb(data: bytes) -> Any:
    return _decode_json(data[1:])


def _encode_json_param(value: Any) -> bytes:
    # Already-encoded documents (bulk inserts) pass through untouched.
    return bytes(value) if isinstance(value, bytes | bytearray) else _encode_json(value)


async def init_connection(conn: asyncpg.Connection) -> None:
    """Every connection speaks json and jsonb in binary, through msgspec."""
    await conn.set_type_codec(
        "json",
        schema="pg_catalog",
        encoder=_encode_json_param,
        decoder=_decode_json,
        format="binary",
    )
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        format="binary",
    )


async def _reset_only_open_transactions(conn: asyncpg.Connection) -> None:
    # asyncpg's default reset costs a round trip on every release (UNLISTEN,
    # RESET ALL, ...), doubling the cost of each pooled statement. Our pools
    # never change session state, so only a forgotten transaction needs undoing.
    if conn.is_in_transaction():
        await conn.reset()


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    pooler: Pooler | None = None,
    **kwargs: Any,
) -> asyncpg.Pool:
    """A pool for taskqueue's own statements. Connections are not reset on
    release beyond rolling back an open transaction: do not SET session state,
    LISTEN or take advisory locks on them (``dsn`` may be a transaction
    pooler). ``pooler``: what is behind ``dsn`` (default: detected)."""
    pooler = pooler or Pooler()
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        connect=cast(Any, pooler.connect),  # the stubs' hook type lists every keyword
        init=init_connection,
        reset=_reset_only_open_transactions,
        server_settings={"application_name": kwargs.pop("application_name", "taskqueue")},
        **kwargs,
    )
    assert pool is not None
    return pool


P = ParamSpec("P")
T = TypeVar("T")


class ReusedConnection:
    """One pool connection kept checked out for callers that await one
    statement at a time.

    asyncpg's pool schedules an extra event-loop task on every release (it
    shields the release from cancellation), which costs about a tenth of a
    one-row autocommit INSERT. A producer that enqueues one task after the
    other runs on this connection without that cost; a call that arrives while
    it is busy uses the pool as usual. After an error or a cancellation the
    connection goes back to the pool, which resets or replaces it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._conn: Any = None  # a PoolConnectionProxy while checked out
        self._busy = False

    async def run(
        self,
        statement: Callable[Concatenate[Any, P], Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        if self._busy:
            return await statement(self._pool, *args, **kwargs)
        self._busy = True
        try:
            conn = self._conn
            if conn is None or conn.is_closed():
                await self._give_back()
                conn = self._conn = await self._pool.acquire()
            try:
                return await statement(conn, *args, **kwargs)
            except BaseException:
                await self._give_back()
                raise
        finally:
            self._busy = False

    async def _give_back(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._pool.release(conn)

    async def close(self) -> None:
        """Return the connection to the pool (before the pool is closed)."""
        await self._give_back()


class Runner:
    """Runs the Python API's statements: each on the pool as a transaction
    of its own, or, with ``reuse_connection``, on one kept connection while
    calls come one at a time (see ``ReusedConnection``)."""

    def __init__(self, pool: asyncpg.Pool, *, reuse_connection: bool = False) -> None:
        self.pool = pool
        self._reused = ReusedConnection(pool) if reuse_connection else None

    async def run(
        self,
        statement: Callable[Concatenate[Any, P], Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        if self._reused is not None:
            return await self._reused.run(statement, *args, **kwargs)
        return await statement(self.pool, *args, **kwargs)

    async def run_connected(
        self,
        statement: Callable[Concatenate[Any, P], Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """For a statement that opens a transaction of its own, which needs
        one connection rather than the pool."""
        async with self.pool.acquire() as conn:
            return await statement(conn, *args, **kwargs)

    async def close(self) -> None:
        """Hand a kept connection back (before the pool is closed)."""
        if self._reused is not None:
            await self._reused.close()


async def connect(dsn: str, **kwargs: Any) -> asyncpg.Connection:
    conn: asyncpg.Connection = await asyncpg.connect(dsn, **kwargs)
    await init_connection(conn)
    return conn


@asynccontextmanager
async def direct_or_pool(
    pool: asyncpg.Pool, direct_url: str, application_name: str
) -> AsyncIterator[asyncpg.Pool | asyncpg.Connection]:
    """A connection of its own to ``direct_url`` for the time of a block
    (maintenance that should not hold a pooler's few server connections or
    run through one), or ``pool`` itself when no direct URL is set."""
    if not direct_url:
        yield pool
        return
    conn = await connect(
        direct_url, timeout=10, server_settings={"application_name": application_name}
    )
    try:
        yield conn
    finally:
        await conn.close()


class MigrationsNotFound(TaskQueueError):
    """No migration files where they should be: a broken install."""


def migrations_dir() -> Path:
    """TASKQUEUE_MIGRATIONS_DIR, else the migrations shipped inside the package
    (taskqueue/migrations/, package data in every install, editable or not)."""
    configured = os.environ.get("TASKQUEUE_MIGRATIONS_DIR")
    folder = Path(configured) if configured else Path(__file__).resolve().parent / "migrations"
    if not any(folder.glob("*.sql")):
        raise MigrationsNotFound(
            f"no migrations in {folder}: the install is incomplete"
            + (" (check TASKQUEUE_MIGRATIONS_DIR)" if configured else "")
        )
    return folder


def _yoyo_url(dsn: str) -> str:
    scheme, sep, rest = dsn.partition("://")
    if not sep or scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
        raise ValueError("database URL must start with postgresql:// or postgres://")
    return f"postgresql+psycopg://{rest}"


def migrate(dsn: str) -> list[str]:
    """Apply every pending migration (idempotent); returns the ids applied."""
    from yoyo import get_backend, read_migrations

    backend = get_backend(_yoyo_url(dsn))
    try:
        migrations = read_migrations(str(migrations_dir()))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations_only(pending)
            # post-apply.sql (the history's next days' partitions) on every
            # run, not only when a migration was pending.
            backend.run_post_apply(migrations)
            # The write path's functions, from the query files of this
            # version: after the migrations made the tables they name.
            install_write_path(dsn)
    finally:
        backend.connection.close()
    return [m.id for m in pending]


def install_write_path(dsn: str) -> list[str]:
    """(Re)make the write-path functions (store/write_path.py) as the role
    ``dsn`` connects as, which owns them; returns those made or changed."""
    import psycopg

    from taskqueue.store import write_path

    with psycopg.connect(dsn) as conn:
        return write_path.install(conn)


def rollback(dsn: str, steps: int | None = None) -> list[str]:
    """Roll back the newest ``steps`` applied migrations (all when None)."""
    from yoyo import get_backend, read_migrations

    backend = get_backend(_yoyo_url(dsn))
    try:
        migrations = read_migrations(str(migrations_dir()))
        with backend.lock():
            applied = backend.to_rollback(migrations)
            chosen = applied if steps is None else applied[:steps]
            backend.rollback_migrations(chosen)
    finally:
        backend.connection.close()
    return [m.id for m in chosen]


def known_migrations() -> list[str]:
    """Ids of the migrations shipped with this version, oldest first (not
    post-apply.sql, a hook yoyo runs after every migrate and never records)."""
    return sorted(
        p.name.removesuffix(".sql")
        for p in migrations_dir().glob("*.sql")
        if not p.name.endswith(".rollback.sql") and not p.name.startswith("post-apply")
    )
