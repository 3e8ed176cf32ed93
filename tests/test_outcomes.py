"""The one word for each way an attempt ends, shared by the metrics'
outcome label and the execution span."""

from __future__ import annotations

import pytest

from taskqueue.models import Outcome, OutcomeKind
from taskqueue.observability.outcomes import OUTCOMES, outcome_index
from taskqueue.worker.inflight import CANCELLED, LEASE_DEADLINE, LEASE_LOST, SHUTDOWN
from tests.helpers import claimed_task


@pytest.mark.parametrize(
    ("kind", "attempt", "reason", "outcome"),
    [
        (OutcomeKind.SUCCEEDED, 1, None, "succeeded"),
        (OutcomeKind.ERROR, 1, None, "retried"),
        (OutcomeKind.ERROR, 2, None, "failed"),
        (OutcomeKind.TIMEOUT, 1, None, "timeout"),
        (OutcomeKind.TIMEOUT, 2, None, "timeout"),
        (OutcomeKind.PERMANENT, 1, "invalid_payload", "failed"),
        (OutcomeKind.SNOOZED, 1, None, "snoozed"),
        (OutcomeKind.RELEASED, 1, SHUTDOWN, "released"),
        (OutcomeKind.RELEASED, 1, LEASE_DEADLINE, "released"),
        (OutcomeKind.RELEASED, 1, "no_handler", "released"),
        (OutcomeKind.RELEASED, 1, CANCELLED, "cancelled"),
        (OutcomeKind.RELEASED, 1, LEASE_LOST, "lease_lost"),
    ],
)
def test_every_way_an_attempt_ends_has_its_outcome_label(
    kind: OutcomeKind, attempt: int, reason: str | None, outcome: str
) -> None:
    task = claimed_task(attempt=attempt, max_retries=1)
    ended = Outcome(task_id=task.id, attempt=attempt, kind=kind, reason=reason)
    assert OUTCOMES[outcome_index(task, ended)] == outcome
