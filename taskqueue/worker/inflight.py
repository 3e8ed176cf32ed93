"""The in-flight ledger: every attempt this worker has claimed and not yet
seen recorded. It is the only owner of that state; the dispatcher, the
executors, the lease keeper and the completer tell it what happened.

What it keeps:
- the held attempts (claimed, outcome not yet recorded) and the ready queue
  (claimed, waiting for an executor);
- how many more to claim (concurrency plus a prefetch sized to how fast
  handlers run) and a signal when room is freed. Room is freed when a
  handler ends, not when its outcome is recorded: the next claim overlaps
  the completer's statement instead of waiting for it (an attempt stays
  held, its lease renewed, until recorded; at most twice ``capacity`` are
  held, so a completer that falls behind holds the claims back too);
- each attempt's lease deadline: the time its lease was last confirmed to,
  measured from when the claim or renewal was *sent*, less a safety margin.
  Past it the database may already have handed the task to another worker,
  so the attempt must not start, and a running handler must stop.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable, Sequence

from taskqueue.models import ClaimedTask, Outcome, OutcomeKind

# Prefetched tasks should start within about this long. Prefetch is what lets
# tiny tasks run at tens of thousands a second, but a slow task claimed early
# only waits here while another worker could have run it.
PREFETCH_HORIZON_SECONDS = 0.05

# Share of the lease kept as a safety margin: a handler stops this long before
# the database's lease runs out (clock rates, the time a cancellation takes).
LEASE_MARGIN_SHARE = 0.1

# Why the ledger stops an attempt (the reason in its task_released event).
LEASE_DEADLINE = "lease_deadline"  # the lease could not be confirmed in time
LEASE_LOST = "lease_lost"  # the database says another worker may have it
SHUTDOWN = "shutdown"
CANCELLED = "cancelled"  # an operator cancelled the task while it ran


class Attempt:
    """One claimed attempt of one task. ``deadline`` (a ``time.monotonic()``
    value), ``stop_reason`` and ``ended`` are the ledger's to change."""

    __slots__ = ("deadline", "ended", "stop_reason", "task")

    def __init__(self, task: ClaimedTask, deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        self.stop_reason: str | None = None
        # Its outcome is with the completer, not yet recorded.
        self.ended = False


class InFlight:
    def __init__(
        self,
        *,
        concurrency: int,
        max_prefetch: int,
        lease_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.concurrency = concurrency
        self._max_prefetch = max_prefetch
        self._lease_seconds = lease_seconds
        self.margin = lease_seconds * LEASE_MARGIN_SHARE
        self._clock = clock
        self._held: dict[uuid.UUID, Attempt] = {}
        self._ended = 0  # held attempts whose outcome awaits recording
        self._ready: asyncio.Queue[Attempt | None] = asyncio.Queue()
        self._room = asyncio.Event()
        self._mean_run: float | None = None
        self._taking = True
        # Told about attempts the ledger gives up before they ran (for the
        # completer: released, not charged) and about running attempts that
        # must stop now (for the executors).
        self.on_dropped: Callable[[Outcome], None] = lambda _outcome: None
        self.on_stop: Callable[[Attempt], None] = lambda _attempt: None
        self.claimed = 0
        self.dropped = 0  # attempts never started because their deadline had passed
        self.lost = 0  # attempts the database no longer held for us

    # -- capacity ---------------------------------------------------------------

    @property
    def prefetch(self) -> int:
        """Claimed tasks allowed to wait for an executor: as many as the
        executors get through within the horizon, at most ``max_prefetch``."""
        mean = self._mean_run
        if mean is None:
            return min(self._max_prefetch, self.concurrency)
        fits = int(self.concurrency * PREFETCH_HORIZON_SECONDS / max(mean, 1e-6))
        return max(0, min(self._max_prefetch, fits))

    @property
    def capacity(self) -> int:
        return self.concurrency + self.prefetch

    @property
    def free(self) -> int:
        """Room to claim: claimed attempts not yet ended count against the
        capacity; those whose outcome only awaits recording count once
        there are more than ``capacity`` of them."""
        capacity, held = self.capacity, len(self._held)
        return min(capacity - (held - self._ended), 2 * capacity - held)

    @property
    def held(self) -> int:
        return len(self._held)

    def readings(self) -> dict[str, int]:
        """What the ledger has counted (claimed, dropped before starting,
        lost to a rescuer) and what it holds now against its concurrency."""
        return {
            "claimed": self.claimed,
            "dropped": self.dropped,
            "lost": self.lost,
            "held": len(self._held),
            "concurrency": self.concurrency,
        }

    def worth_claiming(self) -> bool:
        """Is there room for a worthwhile batch? With work still waiting
        locally, wait for a quarter of the capacity rather than claim a
        handful of rows per round trip."""
        free = self.free
        return free > 0 and (free >= max(1, self.capacity // 4) or self._ready.empty())

    async def wait_for_room(self) -> None:
        self._room.clear()
        await self._room.wait()

    def wake_claimer(self) -> None:
        """Let a dispatcher waiting for room look again (stop, or a change)."""
        self._room.set()

    # -- the dispatcher's side ----------------------------------------------------

    def deadline_from(self, sent_at: float) -> float:
        """The local deadline of a lease the database set or extended in
        answer to a statement sent at ``sent_at``: the database's clock read
        ``now()`` after we sent it, so its lease ends later than this."""
        return sent_at + self._lease_seconds - self.margin

    def add(self, tasks: Sequence[ClaimedTask], sent_at: float) -> None:
        """Claimed ``tasks``, leased by a claim sent at ``sent_at``."""
        deadline = self.deadline_from(sent_at)
        held, ready = self._held, self._ready
        for task in tasks:
            attempt = Attempt(task, deadline)
            replaced = held.get(task.id)
            if replaced is not None and replaced.ended:
                self._ended -= 1  # a lost attempt's task, claimed again
            held[task.id] = attempt
            ready.put_nowait(attempt)
        self.claimed += len(tasks)

    # -- the executors' side ------------------------------------------------------

    async def take(self) -> Attempt | None:
        """The next attempt to start, or None when the worker is stopping.
        Attempts whose deadline has passed are never handed out: they go back
        to the queue uncharged (or, if the lease is gone, the fence drops that)."""
        ready, clock = self._ready, self._clock
        while True:
            attempt = await ready.get()
            if attempt is None:
                return None
            reason = attempt.stop_reason
            if reason is None and clock() < attempt.deadline:
                if ready.empty() and self.worth_claiming():
                    self._room.set()  # nothing left to start: claim now
                return attempt
            self._drop(attempt, reason or LEASE_DEADLINE)

    def attempt(self, task_id: uuid.UUID) -> Attempt | None:
        """The attempt of ``task_id`` this worker holds, if any."""
        return self._held.get(task_id)

    def has_callback(self, task_id: uuid.UUID) -> bool:
        """Whether the held attempt of ``task_id`` carries a callback."""
        attempt = self._held.get(task_id)
        return attempt is not None and attempt.task.has_callback

    def ended(self, attempt: Attempt) -> None:
        """The attempt's outcome went to the completer: it no longer takes
        an executor's place (it stays held until recorded)."""
        if not attempt.ended and self._held.get(attempt.task.id) is attempt:
            attempt.ended = True
            self._ended += 1
            if self.worth_claiming():
                self._room.set()

    def ran(self, seconds: float) -> None:
        """A handler took ``seconds``: the moving average that sizes prefetch."""
        mean = self._mean_run
        self._mean_run = seconds if mean is None else mean + 0.05 * (seconds - mean)

    def _drop(self, attempt: Attempt, reason: str) -> None:
        self.dropped += reason == LEASE_DEADLINE
        self.ended(attempt)
        task = attempt.task
        self.on_dropped(
            Outcome(task_id=task.id, attempt=task.attempt, kind=OutcomeKind.RELEASED, reason=reason)
        )

    # -- the lease keeper's side --------------------------------------------------

    def leased(self) -> list[Attempt]:
        """Every held attempt: their leases are the ones to renew."""
        return list(self._held.values())

    def renewed(
        self, attempts: Iterable[Attempt], kept: set[uuid.UUID], sent_at: float
    ) -> list[Attempt]:
        """A renewal sent at ``sent_at`` for ``attempts`` came back with the
        ids still leased to us: extend those deadlines, stop the rest (and
        return them)."""
        deadline = self.deadline_from(sent_at)
        lost: list[Attempt] = []
        for attempt in attempts:
            if self._held.get(attempt.task.id) is not attempt:
                continue  # recorded meanwhile
            if attempt.task.id in kept:
                if attempt.stop_reason is None:
                    attempt.deadline = max(attempt.deadline, deadline)
            elif attempt.stop_reason is None:
                lost.append(attempt)
                self.stop(attempt, LEASE_LOST)
        self.lost += len(lost)
        return lost

    def stop(self, attempt: Attempt, reason: str) -> None:
        """Stop an attempt: if it waits, it will not start; if it runs, its
        handler is interrupted."""
        attempt.stop_reason = reason
        attempt.deadline = 0.0
        self.on_stop(attempt)

    def cancel(self, task_id: uuid.UUID) -> bool:
        """An operator cancelled this task (the database already says so):
        stop it if this worker holds it."""
        attempt = self._held.get(task_id)
        if attempt is None or attempt.stop_reason is not None:
            return False
        self.stop(attempt, CANCELLED)
        return True

    # -- the completer's side -----------------------------------------------------

    def recorded(self, outcomes: Iterable[Outcome]) -> None:
        """These outcomes are in the database (or were fenced out): the
        attempts are no longer ours to hold."""
        held = self._held
        for outcome in outcomes:
            attempt = held.get(outcome.task_id)
            # Only an attempt that ended: a release keeps the attempt number,
            # so a claim of the same task that overlapped the release's
            # statement holds a new attempt with the old number.
            if attempt is not None and attempt.ended and attempt.task.attempt == outcome.attempt:
                del held[outcome.task_id]
                self._ended -= 1
        self._room.set()

    # -- shutdown -----------------------------------------------------------------

    def stop_taking(self, executors: int) -> list[Attempt]:
        """No attempt starts from now on: returns the ones that were waiting
        (for release) and lets every executor's ``take()`` return None."""
        waiting: list[Attempt] = []
        while not self._ready.empty():
            attempt = self._ready.get_nowait()
            if attempt is not None:
                waiting.append(attempt)
        for attempt in waiting:
            self._drop(attempt, attempt.stop_reason or SHUTDOWN)
        for _ in range(executors):
            self._ready.put_nowait(None)
        self._taking = False
        self._room.set()
        return waiting

    @property
    def taking(self) -> bool:
        return self._taking
