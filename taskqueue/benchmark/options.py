"""What a benchmark run measures: its phases and sizes."""

from __future__ import annotations

import shutil

import msgspec

# What runs without --phases; history, pressure, workflow, crash and the
# claim-key phases (fairness, sequences, keys) run only when named.
DEFAULT_PHASES = ("single", "bulk", "rest", "drain", "limited", "pickup", "unknown", "depth")
PHASES = (
    *DEFAULT_PHASES,
    "history",
    "pressure",
    "workflow",
    "crash",
    "fairness",
    "sequences",
    "keys",
)

LIMIT = 1000  # the concurrency limit of the limited-queue drain
UNKNOWN_AHEAD = 10_000  # tasks of a type the worker has no handler for, ahead in line
BULK_BATCH = 1000
REST_CONNECTIONS = 32
BATCH_CONNECTIONS = 4
REFERENCE_CLAIM_BATCH = 100
# How often a drain's progress is read: the read counts every event since the
# drain began, so at 20 times a second it took a quarter of a core from the
# drain it measures by its last tens of thousands of events. The rate comes
# from the events' timestamps, not from when the bench noticed the end.
DRAIN_POLL_SECONDS = 0.25
METRICS_SCRAPE_SECONDS = 0.5  # far more often than Prometheus would (15 s): the worst case
BULK_PRODUCERS = 4  # coroutines calling enqueue_many at once, a connection each
QUEUES_CALLS = 7  # GET /api/queues timings per measurement (history); the median is kept
PRESSURE_TICK = 0.01  # seconds between the pressure producer's batches
PRESSURE_BEHIND = 1.0  # producer lag (s) past which a window says the producer fell behind
PRESSURE_TAIL = 60.0  # the pinned stage's last seconds, compared with the clean stage
PRESSURE_LONG = 1800.0  # --pressure-long: seconds pinned


class Options(msgspec.Struct, kw_only=True):
    single_n: int = 5_000
    bulk_n: int = 100_000
    drain_n: int = 50_000
    pickup_n: int = 500
    depth_n: int = 1_000_000
    depth_drain: int = 20_000
    rest_seconds: float = 10.0
    reps: int = 3
    phases: tuple[str, ...] = DEFAULT_PHASES
    database_url: str = ""
    quiet: bool = False
    load: str = "auto"  # REST load generator: wrk, python, or auto (wrk when installed)
    history_rows: int = 1_000_000  # finished tasks (and their events) loaded before the drain
    pressure_rate: float = 1000.0  # tasks/s offered
    # When set, the offered rate is this share of a clean drain measured first
    # (phase 5's drain, one worker), and pressure_rate is ignored.
    pressure_rate_share: float | None = None
    pressure_clean: float = 60.0  # seconds per stage
    pressure_pinned: float = 180.0
    pressure_recovery: float = 60.0
    pressure_window: float = 20.0  # seconds per reported window
    pressure_workers: int = 2  # worker processes
    pressure_concurrency: int = 10  # TASKQUEUE_CONCURRENCY of each
    workflow_width: int = 500  # tasks per layer of the workflow phase's 20 layers
    crash_runs: int = 20  # graphs drained with kill -9 of a worker (crash phase)
    # Claim keys (benchmark.claim_keys).
    fairness_backlog: int = 100_000  # tenant a's tasks, enqueued first
    fairness_tenants: int = 9  # other tenants, enqueueing meanwhile
    fairness_rate: float = 10.0  # tasks/s of each other tenant
    fairness_seconds: float = 5.0  # how long they enqueue
    sequence_keys: int = 1000
    sequence_length: int = 20  # tasks per key
    sequence_workers: int = 4  # worker processes
    sequence_kills: int = 2  # of them killed with SIGKILL on the way (and replaced)
    keys_n: int = 20_000  # tasks of the keyed drain (and a tenth of it for the peak)
    keys_distinct: int = 1000  # concurrency keys of the keyed drain
    keys_workers: int = 3  # worker processes of the peak stage
    keys_concurrency: int = 20  # TASKQUEUE_CONCURRENCY of each


# The claim-key phases' sizes, each a --flag of `taskqueue bench` too.
CLAIM_KEY_OPTIONS = tuple(
    name
    for name in Options.__struct_fields__
    if name.startswith(("fairness_", "sequence_", "keys_"))
)


def rest_load_generator(options: Options) -> str:
    if options.load == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    return options.load
