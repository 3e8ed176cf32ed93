"""How an attempt ended, as one word: the ``outcome`` label of
``taskqueue_tasks_finished_total`` and the ``taskqueue.outcome`` attribute of
the execution span. One table, so that the metrics and the traces never
disagree about what to call an ending.

It reads only the outcome's kind and reason and the task's attempt count;
the release reasons it tells apart are the in-flight ledger's words, written
here as plain strings so that nothing here depends on the worker."""

from __future__ import annotations

from taskqueue.models import ClaimedTask, Outcome, OutcomeKind

# The outcome words, in the order of their index.
OUTCOMES = (
    "succeeded",  # the handler returned
    "failed",  # no retry left (an error on the last attempt, Permanent, an invalid payload)
    "retried",  # an error with retries left: queued again after a backoff
    "timeout",  # the handler outran its timeout (retried while retries are left)
    "released",  # back to the queue uncharged: shutdown, lease deadline, no handler here
    "snoozed",  # the handler raised Snooze
    "cancelled",  # an operator cancelled the task while it ran
    "lease_lost",  # stopped: the database had given the lease to someone else
)
SUCCEEDED, FAILED, RETRIED, TIMEOUT, RELEASED, SNOOZED, CANCELLED, LEASE_LOST = range(8)
# The words that mean the attempt went wrong (a span's status is then ERROR).
FAILURES = frozenset({"failed", "retried", "timeout"})
# The reasons the in-flight ledger gives for stopping an attempt, told apart
# from the other releases.
_RELEASE_REASONS = {"cancelled": CANCELLED, "lease_lost": LEASE_LOST}


def outcome_index(task: ClaimedTask, outcome: Outcome) -> int:
    """Where ``outcome`` of ``task`` counts in ``OUTCOMES``."""
    kind = outcome.kind
    if kind is OutcomeKind.SUCCEEDED:
        return SUCCEEDED
    if kind is OutcomeKind.ERROR:
        return RETRIED if task.attempt <= task.max_retries else FAILED
    if kind is OutcomeKind.TIMEOUT:
        return TIMEOUT
    if kind is OutcomeKind.PERMANENT:
        return FAILED
    if kind is OutcomeKind.SNOOZED:
        return SNOOZED
    return _RELEASE_REASONS.get(outcome.reason or "", RELEASED)


def outcome_label(task: ClaimedTask, outcome: Outcome) -> str:
    """The word for how ``task``'s attempt ended with ``outcome``."""
    return OUTCOMES[outcome_index(task, outcome)]
