"""Prometheus metrics (README: "Observability").

Numbers are counted where things happen, in plain integers: a worker binds
one small object per (queue, type) and adds to it, with no lock and no label
lookup per task. ``prometheus_client`` turns them into its exposition only
when scraped, through the collectors below; it is imported then, not by the
producers that merely count what they enqueue.

Labels are bounded: queue, type, outcome, tenant (and method, route, status
for HTTP), never an id. A process keeps at most ``metrics_max_types``
distinct ``type`` labels, ``metrics_max_queues`` distinct ``queue`` labels
and ``metrics_max_tenants`` distinct ``tenant`` labels (an empty one for
tasks without a tenant), the first it sees; any further one is counted
under ``other``.

Where each number comes from:
- a worker: what it claimed, ran and recorded (``WorkerMetrics``), and what
  its parts counted, from the readings it hands over (``read_from``), served on
  its own listener (``MetricsServer``: TASKQUEUE_METRICS_PORT, on
  TASKQUEUE_METRICS_HOST, 127.0.0.1 by default);
- any process that enqueues, the API above all: ``ENQUEUED``;
- the API: request durations (``HttpMetrics``) and the queue gauges
  (``QueueGauges``), from the read model of a queue's state it is handed
  (``tq.views.queue_states``), at most once per ``metrics_cache_seconds``
  however often and by however many it is scraped, and never by workers;
  likewise the events waiting in the history's default partition
  (``HistoryGauges``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from functools import cache
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from taskqueue.models import OutcomeKind
from taskqueue.observability.outcomes import OUTCOMES, outcome_index

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from taskqueue.config import Settings
    from taskqueue.models import ClaimedTask, Outcome
    from taskqueue.observability.readings import WorkerReadings
    from taskqueue.store import QueueStates

logger = logging.getLogger("taskqueue.metrics")

OTHER = "other"

# Upper bounds of the histogram buckets, in seconds.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0, 300.0, 900.0)  # fmt: skip
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0, 300.0, 900.0, 3600.0)  # fmt: skip
HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                5.0, 10.0)  # fmt: skip

# The outcome label of tasks_finished_total is OUTCOMES[i] for TaskSeries.outcomes[i].
_SUCCEEDED = OutcomeKind.SUCCEEDED

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class LabelCap:
    """The label for a raw value: the value itself for the first ``limit``
    distinct values seen, ``other`` for any later one."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._kept: dict[str, str] = {}

    def __call__(self, value: str) -> str:
        label = self._kept.get(value)
        if label is None:
            if len(self._kept) >= self.limit:
                return OTHER  # not remembered: the map stays bounded too
            label = self._kept[value] = value
        return label


TYPES = LabelCap(100)
QUEUES = LabelCap(100)
TENANTS = LabelCap(100)


def _tenant_label(tenant: str | None) -> str:
    """A task's ``tenant`` label: empty for none, capped like the others."""
    return "" if tenant is None else TENANTS(tenant)


def configure(settings: Settings) -> None:
    """Apply the label caps of ``settings`` to this process."""
    TYPES.limit = settings.metrics_max_types
    QUEUES.limit = settings.metrics_max_queues
    TENANTS.limit = settings.metrics_max_tenants


class Histogram:
    """Bucket counts and a sum; ``counts[i]`` holds the observations in
    ``(bounds[i-1], bounds[i]]``, the last one those above every bound."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus buckets: (``le``, observations up to it), +Inf last."""
        counts = list(self.counts)  # one copy: the hot path may add meanwhile
        found: list[tuple[str, float]] = []
        total = 0
        for le, count in zip(_le_labels(self.bounds), counts, strict=True):
            total += count
            found.append((le, total))
        return found


@cache
def _le_labels(bounds: Sequence[float]) -> tuple[str, ...]:
    from prometheus_client import utils

    go_float = cast(Callable[[float], str], utils.floatToGoString)
    return tuple(go_float(bound) for bound in (*bounds, math.inf))


class TaskSeries:
    """What a worker counts for one (queue, type, tenant): its outcomes, and
    the durations of its (queue, type), which every tenant's series shares."""

    __slots__ = ("duration", "labels", "outcomes")

    def __init__(self, labels: tuple[str, str, str], duration: Histogram) -> None:
        self.labels = labels
        self.outcomes = [0] * len(OUTCOMES)
        self.duration = duration


# The counters a worker's parts keep (WorkerReadings), read at scrape time.
WORKER_COUNTERS = {
    "claim_statements": "Claim statements sent",
    "claimed_tasks": "Tasks claimed (rows the claim statements returned)",
    "completion_statements": "Statements that recorded outcomes (one per batch)",
    "completed_tasks": "Outcomes recorded (rows the completion statements changed)",
    "stale_outcomes": "Outcomes discarded by the fence: the lease had been lost to a rescuer",
    "lease_renewal_statements": "Lease renewal statements sent (one per pass, for every held task)",
    "lease_renewed_tasks": "Leases extended",
    "leases_lost": "Held tasks whose lease the database no longer gave this worker",
    "rescued_tasks": "Tasks whose lease had expired, taken back by this worker's rescuer",
}
WORKER_GAUGES = {
    "worker_in_flight": "Handlers running now",
    "worker_capacity": "Handlers that can run at once (the concurrency)",
    "worker_held": "Tasks held: claimed and not yet recorded (running, waiting for an "
    "executor, or their outcome waiting to be recorded)",
    "worker_outcomes_pending": "Outcomes waiting to be recorded (grows while the database is away)",
}


class WorkerMetrics:
    """A worker's counts. ``finished`` and ``claimed`` are on the hot path;
    everything else is what the worker's readings say at scrape time."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str, str | None], TaskSeries] = {}
        self._by_labels: dict[tuple[str, str, str], TaskSeries] = {}
        self._durations: dict[tuple[str, str], Histogram] = {}
        self._waits: dict[tuple[str, str | None], Histogram] = {}
        self._wait_by_label: dict[tuple[str, str], Histogram] = {}
        self._readings: Callable[[], WorkerReadings] | None = None

    def read_from(self, readings: Callable[[], WorkerReadings]) -> None:
        """Serve, at each scrape, what ``readings()`` returns then (the
        worker's counters and gauges)."""
        self._readings = readings

    # The two methods below run for every task: they are written for speed
    # (no call or enum lookup that can be avoided; Histogram.observe inlined).

    def finished(self, task: ClaimedTask, outcome: Outcome, seconds: float | None) -> None:
        """``task``'s attempt ended with ``outcome`` after its handler ran
        ``seconds`` (None: it never started)."""
        try:
            series = self._series[task.queue, task.type, task.tenant]
        except KeyError:
            series = self._bind(task.queue, task.type, task.tenant)
        if outcome.kind is _SUCCEEDED:
            series.outcomes[0] += 1
        else:
            series.outcomes[outcome_index(task, outcome)] += 1
        if seconds is not None:
            duration = series.duration
            duration.counts[bisect_left(DURATION_BUCKETS, seconds)] += 1
            duration.sum += seconds

    def claimed(self, tasks: Iterable[ClaimedTask]) -> None:
        """Tasks just claimed: how long each waited since it was due.
        Measured on this host's clock against the database's ``run_at``, so
        a clock off by a second shifts every wait by a second."""
        now = datetime.now(UTC)  # the tzinfo asyncpg gives run_at: a plain subtraction
        waits = self._waits
        for task in tasks:
            try:
                histogram = waits[task.queue, task.tenant]
            except KeyError:
                histogram = self._bind_wait(task.queue, task.tenant)
            waited = (now - task.run_at).total_seconds()
            if waited > 0.0:
                histogram.counts[bisect_left(WAIT_BUCKETS, waited)] += 1
                histogram.sum += waited
            else:
                histogram.counts[0] += 1

    def _bind(self, queue: str, task_type: str, tenant: str | None) -> TaskSeries:
        labels = (QUEUES(queue), TYPES(task_type), _tenant_label(tenant))
        series = self._by_labels.get(labels)
        if series is None:
            duration = self._durations.get(labels[:2])
            if duration is None:
                duration = self._durations[labels[:2]] = Histogram(DURATION_BUCKETS)
            series = self._by_labels[labels] = TaskSeries(labels, duration)
        if labels[2] != OTHER:  # a tenant beyond the cap is looked up again each time
            self._series[(queue, task_type, tenant)] = series
        return series

    def _bind_wait(self, queue: str, tenant: str | None) -> Histogram:
        label = (QUEUES(queue), _tenant_label(tenant))
        histogram = self._wait_by_label.get(label)
        if histogram is None:
            histogram = self._wait_by_label[label] = Histogram(WAIT_BUCKETS)
        if label[1] != OTHER:  # as in _bind: the cache stays bounded
            self._waits[(queue, tenant)] = histogram
        return histogram

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        series = list(self._by_labels.values())
        finished = CounterMetricFamily(
            "taskqueue_tasks_finished",
            "Attempts that ended, by how (failed: no retry left; retried: an error with "
            "retries left; released: back to the queue uncharged)",
            labels=("queue", "type", "tenant", "outcome"),
        )
        for one in series:
            for outcome, count in zip(OUTCOMES, list(one.outcomes), strict=True):
                finished.add_metric([*one.labels, outcome], count)
        yield finished
        duration = HistogramMetricFamily(
            "taskqueue_task_duration_seconds",
            "How long handlers ran, whatever the outcome",
            labels=("queue", "type"),
        )
        for labels, histogram in list(self._durations.items()):
            duration.add_metric(list(labels), histogram.cumulative(), histogram.sum)
        yield duration
        wait = HistogramMetricFamily(
            "taskqueue_task_wait_seconds",
            "How long tasks waited from due (run_at) to claimed",
            labels=("queue", "tenant"),
        )
        for (queue, tenant), histogram in list(self._wait_by_label.items()):
            wait.add_metric([queue, tenant], histogram.cumulative(), histogram.sum)
        yield wait
        if self._readings is None:
            return
        readings = self._readings()
        for name, text in WORKER_COUNTERS.items():
            yield CounterMetricFamily(f"taskqueue_{name}", text, value=getattr(readings, name))
        family = CounterMetricFamily(
            "taskqueue_reconnects",
            "Database calls that failed for a passing reason (connection lost, server "
            "restarting, timeout) and were retried on a new connection, by worker component",
            labels=("component",),
        )
        for component, count in sorted(_component_labels(readings.reconnects).items()):
            family.add_metric([component], count)
        yield family
        for name, text in WORKER_GAUGES.items():
            yield GaugeMetricFamily(f"taskqueue_{name}", text, value=getattr(readings, name))


def _component_labels(counts: dict[str, int]) -> dict[str, int]:
    """``counts`` keyed by label values: a loop's name ("lease keeper") as
    a word ("lease_keeper")."""
    return {name.replace(" ", "_").replace("-", "_"): count for name, count in counts.items()}


class EnqueueCounts:
    """Tasks this process created, by queue, type and tenant (an idempotency
    key that was already taken creates nothing)."""

    _key = attrgetter("queue", "type", "tenant")

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, str], int] = {}

    def add(self, tasks: Iterable[Any]) -> None:
        """Count ``tasks`` (anything with ``queue``, ``type`` and ``tenant``)."""
        counts = self._counts
        for (queue, task_type, tenant), n in Counter(map(self._key, tasks)).items():
            labels = (QUEUES(queue), TYPES(task_type), _tenant_label(tenant))
            counts[labels] = counts.get(labels, 0) + n

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import CounterMetricFamily

        family = CounterMetricFamily(
            "taskqueue_tasks_enqueued",
            "Tasks created by this process (the REST API, or a producer using TaskQueue)",
            labels=("queue", "type", "tenant"),
        )
        for labels, count in sorted(self._counts.items()):
            family.add_metric(list(labels), count)
        yield family


ENQUEUED = EnqueueCounts()


class HttpMetrics:
    """Request durations of one API, by method, route template and status."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str, int], Histogram] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        histogram = self._series.get(key)
        if histogram is None:
            if method not in HTTP_METHODS:
                key = (OTHER, route, status)
            histogram = self._series.setdefault(key, Histogram(HTTP_BUCKETS))
        histogram.observe(seconds)

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import HistogramMetricFamily

        family = HistogramMetricFamily(
            "taskqueue_http_request_duration_seconds",
            "API requests, by method, route template (unmatched: no route) and status",
            labels=("method", "route", "status"),
        )
        for (method, route, status), histogram in sorted(self._series.items()):
            family.add_metric([method, route, str(status)], histogram.cumulative(), histogram.sum)
        yield family


T = TypeVar("T")


class _DatabaseGauges(Generic[T]):
    """Gauges read from the database when a scrape finds them older than
    ``max_age`` seconds; concurrent scrapes share one read. Subclasses say
    what a read gives (``_store``) and what a failed read leaves (``_failed``)."""

    what = "gauges"

    def __init__(self, *, max_age: float, timeout: float = 5.0) -> None:
        self.max_age = max_age
        self.timeout = timeout
        self.read_at = -math.inf
        self._reading: asyncio.Lock | None = None

    async def refresh(self, read: Callable[[], Awaitable[T]]) -> None:
        """Read again with ``read`` if the last read is older than ``max_age``."""
        if time.monotonic() - self.read_at < self.max_age:
            return
        if self._reading is None:
            self._reading = asyncio.Lock()
        async with self._reading:
            if time.monotonic() - self.read_at < self.max_age:
                return
            try:
                async with asyncio.timeout(self.timeout):
                    value = await read()
            except Exception as exc:
                self._failed()
                logger.warning("cannot read the %s (%s)", self.what, type(exc).__name__)
            else:
                self._store(value)
            self.read_at = time.monotonic()

    def _store(self, value: T) -> None:
        raise NotImplementedError

    def _failed(self) -> None:
        raise NotImplementedError


class QueueGauges(_DatabaseGauges["QueueStates"]):
    """Tasks by queue and state, the age of each queue's oldest due task and
    the live workers, read from the queue read model
    (``tq.views.queue_states``). Queues that emptied keep reporting zeros."""

    STATES = ("due", "scheduled", "running", "waiting")
    what = "queue gauges"

    def __init__(self, *, max_age: float, timeout: float = 5.0) -> None:
        super().__init__(max_age=max_age, timeout=timeout)
        self.up = 0  # did the last read work?
        self.workers = 0
        self.depth: dict[str, tuple[int, int, int, int]] = {}
        self.oldest_due_age: dict[str, float] = {}
        self.expired: dict[str, int] = {}  # read when the states carry finish counts

    def _failed(self) -> None:
        self.up = 0

    def _store(self, states: QueueStates) -> None:
        self.up = 1
        depth = dict.fromkeys(self.depth, (0, 0, 0, 0))
        oldest = dict.fromkeys(self.oldest_due_age, 0.0)
        expired = dict.fromkeys(self.expired, 0)
        for q in states.queues:
            expired[QUEUES(q.name)] = expired.get(QUEUES(q.name), 0) + q.expired
            label = QUEUES(q.name)
            before = depth.get(label, (0, 0, 0, 0))
            depth[label] = (
                before[0] + q.due,
                before[1] + q.scheduled,
                before[2] + q.running,
                before[3] + q.waiting,
            )
            oldest[label] = max(oldest.get(label, 0.0), q.oldest_due_age_seconds)
        self.workers = states.live_workers
        self.depth = depth
        self.oldest_due_age = oldest
        self.expired = expired

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import GaugeMetricFamily

        depth = GaugeMetricFamily(
            "taskqueue_queue_depth",
            "Tasks by queue and state: due (queued, run_at passed), scheduled (queued, "
            "run_at ahead), running, waiting (for parent tasks)",
            labels=("queue", "state"),
        )
        for queue, counts in sorted(self.depth.items()):
            for state, count in zip(self.STATES, counts, strict=True):
                depth.add_metric([queue, state], count)
        yield depth
        oldest = GaugeMetricFamily(
            "taskqueue_queue_oldest_due_age_seconds",
            "How long the oldest due task of each queue has been waiting (0: none due)",
            labels=("queue",),
        )
        for queue, age in sorted(self.oldest_due_age.items()):
            oldest.add_metric([queue], age)
        yield oldest
        expired = GaugeMetricFamily(
            "taskqueue_queue_expired_tasks",
            "Tasks of each queue that expired (not started by their expires_at), "
            "kept or pruned since",
            labels=("queue",),
        )
        for queue, count in sorted(self.expired.items()):
            expired.add_metric([queue], count)
        yield expired
        yield GaugeMetricFamily(
            "taskqueue_workers_live", "Workers whose heartbeat is recent", value=self.workers
        )
        yield GaugeMetricFamily(
            "taskqueue_database_up",
            "Whether the last read of the queue gauges from the database worked",
            value=self.up,
        )


class HistoryGauges(_DatabaseGauges[int]):
    """Events waiting in the history's default partition (rows written for a
    day that had no partition: partition maintenance is not running), read
    with ``tq.views.default_partition_rows``. Absent until a read works."""

    what = "history gauges"

    def __init__(self, *, max_age: float, timeout: float = 5.0) -> None:
        super().__init__(max_age=max_age, timeout=timeout)
        self.default_partition_rows: int | None = None

    def _failed(self) -> None:
        self.default_partition_rows = None

    def _store(self, rows: int) -> None:
        self.default_partition_rows = rows

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import GaugeMetricFamily

        if self.default_partition_rows is not None:
            yield GaugeMetricFamily(
                "taskqueue_events_default_partition_rows",
                "Events in the history's default partition: written for a day that had no "
                "partition (partition maintenance moves them to their day; 0 when it runs)",
                value=self.default_partition_rows,
            )


class _Collector:
    """A prometheus_client collector over any ``collect`` callable."""

    def __init__(self, collect: Callable[[], Iterator[Metric]]) -> None:
        self.collect = collect


def build_registry(*sources: Callable[[], Iterator[Metric]]) -> CollectorRegistry:
    """A registry of the process's own metrics (CPU, memory, GC) and of
    ``sources`` (the ``collect`` methods above)."""
    from prometheus_client import (
        CollectorRegistry,
        GCCollector,
        PlatformCollector,
        ProcessCollector,
    )

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    for collect in sources:
        registry.register(_Collector(collect))
    return registry


def register(registry: CollectorRegistry | None = None) -> None:
    """Export the tasks this process enqueues on a registry of your own
    (default: prometheus_client's global one), for a producer that serves
    its own /metrics."""
    from prometheus_client import REGISTRY

    (registry or REGISTRY).register(_Collector(ENQUEUED.collect))


class MetricsServer:
    """A worker's /metrics listener: prometheus_client's HTTP server on a
    thread of its own, so that a scrape never waits for the event loop."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self.registry = registry
        self.host = host
        self.port = port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        """Listen; returns the port (the one chosen when ``port`` is 0)."""
        from prometheus_client import start_http_server

        try:
            self._server, self._thread = start_http_server(
                self.port, addr=self.host, registry=self.registry
            )
        except OSError as exc:
            from taskqueue.errors import TaskQueueError

            raise TaskQueueError(
                f"cannot serve metrics on {self.host}:{self.port} ({exc.strerror or exc}):"
                " set TASKQUEUE_METRICS_PORT to a free port"
            ) from None
        self.port = self._server.server_port
        logger.info("metrics on http://%s:%d/metrics", self.host, self.port)
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
