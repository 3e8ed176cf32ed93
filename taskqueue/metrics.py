"""The old home of ``taskqueue.observability.metrics``, kept so that existing
imports (``taskqueue.metrics.register()`` among them) go on working. The
names are the same objects: ``configure`` here changes the label caps there.
Patch attributes on ``taskqueue.observability.metrics`` itself, not here."""

from taskqueue.observability.metrics import (
    DURATION_BUCKETS,
    ENQUEUED,
    HTTP_BUCKETS,
    HTTP_METHODS,
    OTHER,
    QUEUES,
    TYPES,
    WAIT_BUCKETS,
    WORKER_COUNTERS,
    WORKER_GAUGES,
    EnqueueCounts,
    Histogram,
    HttpMetrics,
    LabelCap,
    MetricsServer,
    QueueGauges,
    TaskSeries,
    WorkerMetrics,
    build_registry,
    configure,
    register,
)
from taskqueue.observability.outcomes import OUTCOMES, outcome_index

__all__ = [
    "DURATION_BUCKETS",
    "ENQUEUED",
    "HTTP_BUCKETS",
    "HTTP_METHODS",
    "OTHER",
    "OUTCOMES",
    "QUEUES",
    "TYPES",
    "WAIT_BUCKETS",
    "WORKER_COUNTERS",
    "WORKER_GAUGES",
    "EnqueueCounts",
    "Histogram",
    "HttpMetrics",
    "LabelCap",
    "MetricsServer",
    "QueueGauges",
    "TaskSeries",
    "WorkerMetrics",
    "build_registry",
    "configure",
    "outcome_index",
    "register",
]
