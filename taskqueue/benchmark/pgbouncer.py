"""A PgBouncer in transaction mode for the benchmark (and the tests): Debian's
`pgbouncer` binary on a free port, with a generated configuration in front
of a trust-auth PostgreSQL; every database, ``pool_size`` server connections
per database and user."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from taskqueue.benchmark.tools import free_port


def find_pgbouncer() -> str | None:
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/sbin")


@dataclass(frozen=True)
class Bouncer:
    """A running PgBouncer: ``through(url)`` is ``url`` with the pooler's host
    and port (same user and database); ``log`` its output."""

    host: str
    port: int
    log: Path

    def through(self, url: str) -> str:
        parts = urlsplit(url)
        user = f"{parts.username}@" if parts.username else ""
        return urlunsplit(parts._replace(netloc=f"{user}{self.host}:{self.port}"))


def _config(server: str, port: int, folder: Path, pool_size: int, extra: dict[str, str]) -> str:
    parts = urlsplit(server)
    settings = {
        "listen_addr": "127.0.0.1",
        "listen_port": str(port),
        "unix_socket_dir": "",
        "auth_type": "trust",
        "auth_file": str(folder / "userlist.txt"),
        "admin_users": "postgres",
        "pool_mode": "transaction",
        "default_pool_size": str(pool_size),
        "reserve_pool_size": "0",
        "max_client_conn": "5000",
        # Nothing else: taskqueue needs no ignore_startup_parameters.
        **extra,
    }
    return "\n".join(
        [
            "[databases]",
            f"* = host={parts.hostname} port={parts.port}",
            "[pgbouncer]",
            *(f"{key} = {value}" for key, value in settings.items()),
            "",
        ]
    )


@contextlib.contextmanager
def running_pgbouncer(
    binary: str, server: str, *, pool_size: int, users: Iterable[str] = (), **extra: str
) -> Iterator[Bouncer]:
    """PgBouncer in transaction mode in front of ``server`` until the block
    ends; ``users`` may log in besides the server URL's (and postgres)."""
    folder = Path(tempfile.mkdtemp(prefix="taskqueue-pgbouncer-"))
    folder.chmod(0o755)  # read by the unprivileged user it runs as under root
    port = free_port()
    names = {urlsplit(server).username or "postgres", "postgres", *users}
    (folder / "userlist.txt").write_text("".join(f'"{u}" ""\n' for u in sorted(names)))
    (folder / "pgbouncer.ini").write_text(_config(server, port, folder, pool_size, extra))
    for name in ("userlist.txt", "pgbouncer.ini"):
        (folder / name).chmod(0o644)
    log = folder / "pgbouncer.log"
    # PgBouncer refuses to run as root; -u drops to an ordinary user.
    as_user = ["-u", _unprivileged_user()] if os.geteuid() == 0 else []
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [binary, *as_user, str(folder / "pgbouncer.ini")], stdout=out, stderr=out
        )
    try:
        _wait_for_port(port, proc, log)
        yield Bouncer("127.0.0.1", port, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name).pw_name
    raise RuntimeError("no unprivileged user to run pgbouncer as")


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pgbouncer exited ({proc.returncode}):\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"pgbouncer did not listen within 15s:\n{log.read_text()}")
