"""The in-flight ledger on its own: capacity, lease deadlines, what it hands
out and what it gives back. A fake clock stands in for time.monotonic()."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from taskqueue.models import ClaimedTask, Outcome, OutcomeKind
from taskqueue.worker.inflight import LEASE_DEADLINE, LEASE_LOST, SHUTDOWN, Attempt, InFlight


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def claimed(n: int) -> list[ClaimedTask]:
    return [
        ClaimedTask(
            id=uuid.uuid4(),
            queue="default",
            type="noop",
            payload="{}",
            priority=0,
            attempt=1,
            max_retries=3,
            timeout_seconds=30,
            run_at=datetime.now(UTC),
        )
        for _ in range(n)
    ]


def ledger(clock: Clock, **kwargs: int) -> tuple[InFlight, list[Outcome], list[Attempt]]:
    inflight = InFlight(
        concurrency=kwargs.get("concurrency", 2),
        max_prefetch=kwargs.get("max_prefetch", 100),
        lease_seconds=10,
        clock=clock,
    )
    dropped: list[Outcome] = []
    stopped: list[Attempt] = []
    inflight.on_dropped = dropped.append
    inflight.on_stop = stopped.append
    return inflight, dropped, stopped


async def test_an_attempt_is_handed_out_only_before_its_lease_deadline() -> None:
    clock = Clock()
    inflight, dropped, _ = ledger(clock)
    late, early = claimed(2)
    inflight.add([late], sent_at=clock.now - 9.5)  # its claim was sent long ago
    inflight.add([early], sent_at=clock.now)
    # lease 10 s, margin 1 s: `late` was due to stop at now - 0.5, so the
    # first take() gives it back and hands out `early`.
    taken = await inflight.take()
    assert taken is not None
    assert taken.task is early
    assert taken.deadline == clock.now + 9.0
    inflight.stop_taking(executors=1)
    assert await inflight.take() is None
    assert [(o.task_id, o.kind, o.reason) for o in dropped] == [
        (late.id, OutcomeKind.RELEASED, LEASE_DEADLINE)
    ]
    assert inflight.dropped == 1


async def test_a_renewal_moves_deadlines_from_when_it_was_sent_and_stops_lost_attempts() -> None:
    clock = Clock()
    inflight, _, stopped = ledger(clock)
    kept_task, lost_task = claimed(2)
    inflight.add([kept_task, lost_task], sent_at=clock.now)
    attempts = inflight.leased()
    clock.now += 5
    sent_at = clock.now
    clock.now += 3  # the renewal took three seconds to come back
    lost = inflight.renewed(attempts, {kept_task.id}, sent_at)
    kept, gone = attempts
    assert kept.deadline == sent_at + 9.0  # not the time the answer came
    assert lost == [gone]
    assert (gone.stop_reason, gone.deadline) == (LEASE_LOST, 0.0)
    assert stopped == [gone]
    assert inflight.lost == 1
    # A renewal that answered late never shortens a deadline.
    inflight.renewed([kept], {kept_task.id}, sent_at - 4)
    assert kept.deadline == sent_at + 9.0


async def test_recorded_outcomes_free_room_and_prefetch_follows_run_times() -> None:
    clock = Clock()
    inflight, _, _ = ledger(clock, concurrency=4, max_prefetch=100)
    assert (inflight.prefetch, inflight.capacity, inflight.free) == (4, 8, 8)
    tasks = claimed(8)
    inflight.add(tasks, sent_at=clock.now)
    assert (inflight.free, inflight.worth_claiming()) == (0, False)
    for _ in range(4):
        attempt = await inflight.take()
        assert attempt is not None
        inflight.ended(attempt)
    inflight.recorded(
        [Outcome(task_id=t.id, attempt=1, kind=OutcomeKind.SUCCEEDED) for t in tasks[:3]]
    )
    # Stale news about an older attempt of a held task changes nothing.
    inflight.recorded([Outcome(task_id=tasks[3].id, attempt=0, kind=OutcomeKind.SUCCEEDED)])
    # Five held; the fourth ended, so its place is free before it is recorded.
    assert (inflight.held, inflight.free) == (5, 4)
    for _ in range(50):
        inflight.ran(0.001)  # 1 ms handlers: 4 executors get through 200 in 50 ms
    assert inflight.prefetch == 100
    for _ in range(200):
        inflight.ran(1.0)  # slow handlers: none waits in prefetch
    assert inflight.prefetch == 0


async def test_an_ended_attempt_frees_room_before_its_outcome_is_recorded() -> None:
    clock = Clock()
    inflight, _, _ = ledger(clock, concurrency=2, max_prefetch=0)
    assert inflight.capacity == 2
    first = claimed(2)
    inflight.add(first, sent_at=clock.now)
    assert inflight.free == 0
    a = await inflight.take()
    b = await inflight.take()
    assert a is not None and b is not None
    inflight.ended(a)
    inflight.ended(a)  # told twice: counted once
    # Its handler is done: room for the next claim while the completer writes.
    assert (inflight.held, inflight.free, inflight.worth_claiming()) == (2, 1, True)
    inflight.ended(b)
    assert inflight.free == 2
    # Still held (its lease renewed) until recorded.
    assert {x.task.id for x in inflight.leased()} == {t.id for t in first}
    # At most capacity attempts wait for the completer: then claims wait for it.
    second = claimed(2)
    inflight.add(second, sent_at=clock.now)
    for _ in second:
        attempt = await inflight.take()
        assert attempt is not None
        inflight.ended(attempt)
    assert (inflight.held, inflight.free) == (4, 0)
    inflight.recorded([Outcome(task_id=t.id, attempt=1, kind=OutcomeKind.SUCCEEDED) for t in first])
    assert (inflight.held, inflight.free) == (2, 2)
    # A release keeps the attempt number: the same task claimed again while
    # the release was being written is a new attempt with the old number,
    # and the release's news does not let go of it.
    again = second[0]
    inflight.recorded([Outcome(task_id=again.id, attempt=1, kind=OutcomeKind.RELEASED)])
    assert (inflight.held, inflight.free) == (1, 2)
    inflight.add([again], sent_at=clock.now)
    inflight.recorded([Outcome(task_id=again.id, attempt=1, kind=OutcomeKind.RELEASED)])
    assert (inflight.held, inflight.free) == (2, 1)
    assert inflight.attempt(again.id) is not None


async def test_a_dropped_attempt_ends_at_once() -> None:
    clock = Clock()
    inflight, dropped, _ = ledger(clock, concurrency=1, max_prefetch=1)
    late, early = claimed(2)
    inflight.add([late], sent_at=clock.now - 9.5)  # past its deadline: never starts
    inflight.add([early], sent_at=clock.now)
    assert inflight.free == 0
    taken = await inflight.take()
    assert taken is not None and taken.task is early
    # `late` went back (its release awaits recording) and takes no place.
    assert [o.task_id for o in dropped] == [late.id]
    assert (inflight.held, inflight.free) == (2, 1)


async def test_stopping_releases_what_waits_and_ends_every_executor() -> None:
    clock = Clock()
    inflight, dropped, _ = ledger(clock)
    tasks = claimed(3)
    inflight.add(tasks, sent_at=clock.now)
    assert await inflight.take() is not None  # one is running
    waiting = inflight.stop_taking(executors=2)
    assert [a.task for a in waiting] == tasks[1:]
    assert [(o.task_id, o.reason) for o in dropped] == [(t.id, SHUTDOWN) for t in tasks[1:]]
    assert [await inflight.take(), await inflight.take()] == [None, None]
