"""What a connection pooler between taskqueue and PostgreSQL allows, and
finding out whether one is there (README: "Connection poolers").

A transaction pooler (PgBouncer ``pool_mode = transaction``) lends a server
connection for one transaction at a time, so nothing may outlive a
transaction on a pooled connection: no LISTEN, no session-level SET or
advisory lock, and no named prepared statement unless the pooler tracks them
(PgBouncer 1.21+ with ``max_prepared_statements``). asyncpg names and caches
its statements unless ``statement_cache_size=0``; then it sends each one
unnamed and parses it again in the same message run as its execution, which
any pooler passes through. LISTEN, migrations and partition maintenance use
TASKQUEUE_DIRECT_URL instead.

Detection (TASKQUEUE_POOLER=auto): a pooler answers the client's startup
with a cancel key of its own, so the process id the client was told differs
from ``pg_backend_pid()`` of the backend that runs its statements. (LISTEN
followed by ``pg_listening_channels()`` in the next transaction is no test:
an otherwise idle PgBouncer hands the same server connection back, and the
check passes.)"""

from __future__ import annotations

import asyncio
from typing import Any, Literal, get_args

import asyncpg

from taskqueue import store

Mode = Literal["auto", "none", "pgbouncer", "pgbouncer-prepared"]
MODES: tuple[str, ...] = get_args(Mode)
STATEMENT_CACHE_SIZE = 100  # asyncpg's default, kept where named statements are safe


async def is_pooled(conn: asyncpg.Connection) -> bool:
    """Whether a pooler stands between ``conn`` and the backend it talks to.
    Safe on any connection: the statement is sent unnamed when the cache is off."""
    return conn.get_server_pid() != await store.backend_pid(conn)


class Pooler:
    """What is known about the pooler behind one URL, and connections made to
    suit it (asyncpg's pool ``connect`` hook). ``pooled`` is None until the
    first connection has looked (mode ``auto``)."""

    def __init__(self, mode: Mode = "auto") -> None:
        self.mode = mode
        self.pooled: bool | None = None if mode == "auto" else mode != "none"
        self._looking = asyncio.Lock()

    @property
    def statement_cache_size(self) -> int:
        keeps_names = self.pooled is False or self.mode == "pgbouncer-prepared"
        return STATEMENT_CACHE_SIZE if keeps_names else 0

    @property
    def allows_listen(self) -> bool:
        """LISTEN on this URL delivers notifications (False behind a pooler:
        the pooler drops them between transactions)."""
        return self.pooled is False

    async def connect(self, dsn: str, **kwargs: Any) -> asyncpg.Connection:
        """A connection with the statement cache this URL allows. The first one
        in mode ``auto`` is opened with the cache off and looks; behind a
        pooler it is kept, else it is replaced by one with the cache on."""
        if self.pooled is None:
            async with self._looking:
                if self.pooled is None:
                    probe: asyncpg.Connection = await asyncpg.connect(
                        dsn, **{**kwargs, "statement_cache_size": 0}
                    )
                    try:
                        self.pooled = await is_pooled(probe)
                    except BaseException:
                        await probe.close()
                        raise
                    if self.pooled:
                        return probe
                    await probe.close()
        kwargs["statement_cache_size"] = self.statement_cache_size
        conn: asyncpg.Connection = await asyncpg.connect(dsn, **kwargs)
        return conn
