"""What a benchmark run measures: its phases and sizes."""

from __future__ import annotations

import shutil

import msgspec

PHASES = ("single", "bulk", "rest", "drain", "limited", "pickup", "unknown", "depth")

LIMIT = 1000  # the concurrency limit of the limited-queue drain
UNKNOWN_AHEAD = 10_000  # tasks of a type the worker has no handler for, ahead in line
BULK_BATCH = 1000
REST_CONNECTIONS = 32
BATCH_CONNECTIONS = 4
REFERENCE_CLAIM_BATCH = 100
METRICS_SCRAPE_SECONDS = 0.5  # far more often than Prometheus would (15 s): the worst case
BULK_PRODUCERS = 4  # coroutines calling enqueue_many at once, a connection each


class Options(msgspec.Struct, kw_only=True):
    single_n: int = 5_000
    bulk_n: int = 100_000
    drain_n: int = 50_000
    pickup_n: int = 500
    depth_n: int = 1_000_000
    depth_drain: int = 20_000
    rest_seconds: float = 10.0
    reps: int = 3
    phases: tuple[str, ...] = PHASES
    database_url: str = ""
    quiet: bool = False
    load: str = "auto"  # REST load generator: wrk, python, or auto (wrk when installed)


def rest_load_generator(options: Options) -> str:
    if options.load == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    return options.load
