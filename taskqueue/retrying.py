"""Which database errors are worth retrying, and how long to wait between tries."""

from __future__ import annotations

import asyncio
import random

import asyncpg

# Data and integrity errors (SQLSTATE classes 22 and 23) will fail the same way
# every time; anything else (lost connections, restarts, failover, timeouts,
# serialisation failures) is expected to pass.
_PERMANENT_CLASSES = ("22", "23", "42")


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        return not state.startswith(_PERMANENT_CLASSES)
    # InternalClientError: asyncpg's protocol state after a connection died
    # mid-statement; the pool replaces that connection.
    return isinstance(
        exc,
        OSError | asyncpg.InterfaceError | asyncpg.InternalClientError | asyncio.TimeoutError,
    )


class ReconnectDelay:
    """Reconnect delays: doubling from ``first`` to ``cap``, with full jitter."""

    def __init__(self, first: float = 0.05, cap: float = 5.0) -> None:
        self.first = first
        self.cap = cap
        self.failures = 0

    def next_delay(self) -> float:
        self.failures += 1
        ceiling = min(self.cap, self.first * 2 ** min(self.failures - 1, 20))
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0
