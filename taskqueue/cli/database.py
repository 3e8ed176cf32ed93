"""The commands about the database itself: ``taskqueue migrate | embedded |
psql``, and finding the local PostgreSQL that ``make run`` keeps in
``.taskqueue/`` (``TASKQUEUE_DATA_DIR``) for the commands given no URL."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from taskqueue import db
from taskqueue.config import ConfigError, Settings, mask_password
from taskqueue.embedded import EmbeddedPostgresError, find_bin_dir

if TYPE_CHECKING:
    from taskqueue.embedded import EmbeddedPostgres


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    # Migrations hold a session (yoyo's lock, psycopg's prepared statements):
    # the server itself when DATABASE_URL is a pooler.
    dsn = settings.direct_url or settings.require_database_url()
    if args.rollback is not None:
        if not args.yes:
            what = "every migration" if args.rollback == 0 else f"the newest {args.rollback}"
            raise ConfigError(
                f"--rollback undoes {what}, dropping their tables and data "
                f"on {mask_password(dsn)}: add --yes to go ahead"
            )
        undone = db.rollback(dsn, None if args.rollback == 0 else args.rollback)
        print(f"rolled back: {', '.join(undone) or 'nothing'}")
    else:
        applied = db.migrate(dsn)
        print(f"applied: {', '.join(applied) or 'nothing (up to date)'}")
    return 0


def cmd_psql(args: argparse.Namespace, settings: Settings) -> int:
    """psql on the database `make run` uses. An embedded server this command
    had to start is stopped again when psql exits."""
    psql = shutil.which("psql") or str(find_bin_dir() / "psql")
    server = None if settings.database_url else embedded_server()
    if server is None or server.running_port() is not None:
        dsn = settings.database_url or embedded_server().start()
        os.execvp(psql, [psql, dsn, *args.psql_args])  # noqa: S606 - becomes psql, by design
    server.claim("taskqueue psql")
    try:
        dsn = server.start()
        # Ctrl-C belongs to psql (it cancels a query); this process waits.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return subprocess.call([psql, dsn, *args.psql_args])
        finally:
            signal.signal(signal.SIGINT, previous)
    finally:
        if server.started_here:
            server.stop()
        server.release()


def cmd_embedded(args: argparse.Namespace, settings: Settings) -> int:
    server = embedded_server()
    if args.action == "start":
        print(server.start())
    elif args.action == "stop":
        server.stop()
    else:
        port = server.running_port()
        if port is None:
            print("embedded PostgreSQL is not running", file=sys.stderr)
            return 1
        server.port = port
        print(server.dsn())
    return 0


def embedded_data_dir() -> Path:
    return Path(os.environ.get("TASKQUEUE_DATA_DIR", ".taskqueue")) / "pgdata"


def embedded_server() -> EmbeddedPostgres:
    """The development server `make run` uses: data kept in .taskqueue/pgdata."""
    from taskqueue.embedded import EmbeddedPostgres

    return EmbeddedPostgres(embedded_data_dir())


def with_running_embedded(settings: Settings) -> Settings:
    """Without DATABASE_URL, the embedded server `make run` keeps in
    .taskqueue/ when it is running: `taskqueue queues` beside `make run`
    just works. Never starts one."""
    if not (embedded_data_dir() / "postmaster.pid").exists():
        return settings
    try:
        server = embedded_server()
    except EmbeddedPostgresError:
        return settings
    port = server.running_port()
    if port is None:
        return settings
    server.port = port
    return msgspec.structs.replace(settings, database_url=server.dsn())
