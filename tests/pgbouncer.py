"""A real PgBouncer (Debian's `pgbouncer` package) in transaction mode in
front of the test server (taskqueue.benchmark.pgbouncer starts it). Tests
that need it skip on a machine without it and fail in CI, where .ci/run
installs it and sets TASKQUEUE_REQUIRE_PGBOUNCER."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator

import pytest

from taskqueue.benchmark.pgbouncer import Bouncer, find_pgbouncer
from taskqueue.benchmark.pgbouncer import running_pgbouncer as _running

__all__ = ["Bouncer", "running_pgbouncer"]


def pgbouncer_binary() -> str:
    found = find_pgbouncer()
    if found is not None:
        return found
    if os.environ.get("TASKQUEUE_REQUIRE_PGBOUNCER"):
        pytest.fail("pgbouncer is required here (TASKQUEUE_REQUIRE_PGBOUNCER) but not installed")
    pytest.skip("pgbouncer is not installed (Debian/Ubuntu: apt-get install pgbouncer)")


@contextlib.contextmanager
def running_pgbouncer(
    server: str, *, pool_size: int = 2, users: Iterable[str] = (), **extra: str
) -> Iterator[Bouncer]:
    """PgBouncer in transaction mode in front of ``server`` (a trust-auth
    PostgreSQL URL): ``pool_size`` server connections per database and user;
    ``users``: roles that may log in through it besides the server URL's."""
    binary = pgbouncer_binary()
    with _running(binary, server, pool_size=pool_size, users=users, **extra) as bouncer:
        yield bouncer
