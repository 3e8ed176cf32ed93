"""What a worker hands its metrics: one reading of the numbers its parts keep.

The worker composes this from its parts' own ``readings()`` and gives the
metrics a function returning it (``WorkerMetrics.read_from``); the metrics
call it at scrape time only. The worker imports this shape, never the other
way round: the metrics know nothing of the worker's parts.

Counter and gauge fields are named as the metric they become
(``taskqueue_<field>``); a worker that has not reached the database yet
reads all zeros but its capacity."""

from __future__ import annotations

import msgspec


class WorkerReadings(msgspec.Struct, frozen=True, kw_only=True):
    # Counters: they only grow over a worker's life.
    claim_statements: int = 0
    claimed_tasks: int = 0
    completion_statements: int = 0
    completed_tasks: int = 0
    stale_outcomes: int = 0
    lease_renewal_statements: int = 0
    lease_renewed_tasks: int = 0
    leases_lost: int = 0
    rescued_tasks: int = 0
    # Database calls retried after a passing failure, by the part that made
    # them ("claim", "complete", "listen", or a background loop's name).
    reconnects: dict[str, int] = {}
    # Gauges: what holds now.
    worker_in_flight: int = 0
    worker_capacity: int = 0
    worker_held: int = 0
    worker_outcomes_pending: int = 0
