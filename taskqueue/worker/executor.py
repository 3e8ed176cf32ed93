"""The executor pool: ``concurrency`` loops that take attempts from the
ledger, run their handlers and turn whatever happens into an ``Outcome``.
No SQL here: outcomes go to the completer.

A handler is cut short at the first of: its timeout (a ``timeout`` failure),
its lease deadline without a confirmed renewal, or an interruption (lease
lost, shutdown); the last two release the task without charging the attempt.
Both use one loop timer per attempt that cancels the executor's own task,
rather than ``asyncio.timeout``: the same semantics with a fraction of the
per-task overhead, which matters at tens of thousands of tasks a second."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec

from taskqueue.backoff import Backoff
from taskqueue.errors import Permanent, Snooze
from taskqueue.limits import DEFAULT_MAX_RESULT_BYTES
from taskqueue.models import ClaimedTask, Outcome, OutcomeKind
from taskqueue.observability import tracing
from taskqueue.observability.logs import running_task
from taskqueue.registry import Registry, TaskContext
from taskqueue.retry_policy import Rule, decide
from taskqueue.worker.inflight import CANCELLED, LEASE_DEADLINE, SHUTDOWN, Attempt, InFlight

logger = logging.getLogger("taskqueue.executor")

MAX_ERROR_LENGTH = 4000


def describe_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    # PostgreSQL text cannot hold NUL; a huge message would bloat every event.
    return text.replace("\x00", "")[:MAX_ERROR_LENGTH]


class _Run:
    """One handler running in one executor loop, and the timer that cuts it
    short: at its timeout, or at its lease deadline unless renewed meanwhile."""

    __slots__ = ("attempt", "cut", "finished", "loop", "runner", "timeout_at", "timer")

    def __init__(
        self,
        attempt: Attempt,
        runner: asyncio.Task[Any],
        loop: asyncio.AbstractEventLoop,
        timeout_at: float,
    ) -> None:
        self.attempt = attempt
        self.runner = runner
        self.loop = loop
        self.timeout_at = timeout_at
        self.cut: str | None = None  # "timeout", or why it was released
        self.finished = False
        self.timer = self._arm()

    def _arm(self) -> asyncio.TimerHandle:
        # Deadlines are time.monotonic() values; the loop's clock may not
        # share that epoch (uvloop), so schedule by "seconds from now".
        until = min(self.timeout_at, self.attempt.deadline) - time.monotonic()
        return self.loop.call_later(max(until, 0.0), self.check)

    def check(self) -> None:
        """Cut the handler short if its time is up (called by the timer, and
        by the ledger through ``ExecutorPool.interrupt``)."""
        if self.finished or self.cut is not None:
            return
        now = time.monotonic()
        attempt = self.attempt
        if now >= self.timeout_at:
            self.cut = "timeout"
        elif attempt.stop_reason is not None or now >= attempt.deadline:
            self.cut = attempt.stop_reason or LEASE_DEADLINE
        else:  # renewed meanwhile: wait for the new deadline
            self.timer.cancel()
            self.timer = self._arm()
            return
        self.timer.cancel()
        self.runner.cancel()

    def finish(self) -> None:
        self.finished = True
        self.timer.cancel()


class ExecutorPool:
    def __init__(
        self,
        inflight: InFlight,
        registry: Registry,
        *,
        worker_id: str,
        backoff: Backoff,
        submit: Callable[[Outcome], None],
        on_finished: Callable[[ClaimedTask, Outcome, float | None], None] | None = None,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
    ) -> None:
        self._inflight = inflight
        self._max_result_bytes = max_result_bytes
        # Told how each attempt ended and how long it ran (metrics); None: nobody asks.
        self._on_finished = on_finished
        self._registry = registry
        self._worker_id = worker_id
        self._backoff = backoff
        self._submit = submit
        self._running: dict[Attempt, _Run] = {}
        # Only when this process traces (OpenTelemetry with a provider set).
        self._tracer = tracing.execution_tracer(worker_id)

    @property
    def running(self) -> int:
        return len(self._running)

    def readings(self) -> dict[str, int]:
        """Handlers running now."""
        return {"running": len(self._running)}

    def interrupt(self, attempt: Attempt) -> None:
        """Stop a running handler now (the ledger decided why)."""
        run = self._running.get(attempt)
        if run is not None:
            run.check()

    def interrupt_all(self) -> None:
        for run in list(self._running.values()):
            run.check()

    async def run_loop(self) -> None:
        """One executor: take, run, report, until the ledger says stop."""
        inflight, submit = self._inflight, self._submit
        runner = asyncio.current_task()
        assert runner is not None
        loop = asyncio.get_running_loop()
        clock = time.perf_counter
        finished = self._on_finished
        execute = self.execute
        if self._tracer is not None:
            execute = functools.partial(self._tracer.execute, self.execute)
        while (attempt := await inflight.take()) is not None:
            started = clock()
            try:
                outcome = await execute(attempt, runner, loop)
            except asyncio.CancelledError:
                # The worker itself is being torn down: back to the queue.
                task = attempt.task
                released = Outcome(
                    task_id=task.id,
                    attempt=task.attempt,
                    kind=OutcomeKind.RELEASED,
                    reason="shutdown",
                )
                if finished is not None:
                    finished(task, released, None)
                submit(released)
                inflight.ended(attempt)
                raise
            elapsed = clock() - started
            inflight.ran(elapsed)
            if finished is not None:
                finished(attempt.task, outcome, elapsed)
            submit(outcome)
            inflight.ended(attempt)

    async def execute(
        self, attempt: Attempt, runner: asyncio.Task[Any], loop: asyncio.AbstractEventLoop
    ) -> Outcome:
        """Run ``attempt``'s handler inside ``runner`` (the calling task,
        which a timeout or an interruption cancels) and say how it ended."""
        task = attempt.task
        spec = self._registry.get(task.type)
        if spec is None:  # not claimable by this worker; never charge it
            return Outcome(
                task_id=task.id,
                attempt=task.attempt,
                kind=OutcomeKind.RELEASED,
                reason="no_handler",
            )
        try:
            payload = spec.decode_payload(task.payload)
        except msgspec.ValidationError as exc:
            error = f"payload does not match {task.type!r}: {exc}"
            return self._failed(attempt, OutcomeKind.PERMANENT, error, reason="invalid_payload")
        # The deadline is checked here, with nothing awaited before the handler starts.
        now = time.monotonic()
        if attempt.stop_reason is not None or now >= attempt.deadline:
            return Outcome(
                task_id=task.id,
                attempt=task.attempt,
                kind=OutcomeKind.RELEASED,
                reason=attempt.stop_reason or LEASE_DEADLINE,
            )
        context = TaskContext(
            task_id=task.id,
            type=task.type,
            queue=task.queue,
            attempt=task.attempt,
            max_retries=task.max_retries,
            worker_id=self._worker_id,
            tenant=task.tenant,
            parent_results=task.parent_results,
            reads_parents=spec.parent_results,
        )
        run = self._running[attempt] = _Run(attempt, runner, loop, now + task.timeout_seconds)
        token = running_task.set((task, self._worker_id))
        try:
            result = await spec.run(payload, context)
        except asyncio.CancelledError:
            if run.cut is None:
                raise  # not ours: the worker itself is being cancelled
            runner.uncancel()
            return self._cut_short(attempt, run.cut)
        except Permanent as exc:
            return self._failed(attempt, OutcomeKind.PERMANENT, describe_error(exc), exc=exc)
        except Snooze as exc:
            logger.info(
                "task %s (%s) snoozed for %gs%s",
                task.id,
                task.type,
                exc.seconds,
                f": {exc.reason}" if exc.reason else "",
            )
            return Outcome(
                task_id=task.id,
                attempt=task.attempt,
                kind=OutcomeKind.SNOOZED,
                retry_delay=exc.seconds,
                reason=exc.reason or None,
            )
        except Exception as exc:
            return self._failed(attempt, OutcomeKind.ERROR, describe_error(exc), exc=exc)
        finally:
            running_task.reset(token)
            run.finish()
            del self._running[attempt]
        if run.cut is not None:
            # The handler swallowed the cancellation and returned anyway.
            runner.uncancel()
            if run.cut != "timeout":
                return self._cut_short(attempt, run.cut)
        encoded = _encode_result(result)
        if isinstance(encoded, msgspec.Raw) and len(encoded) > self._max_result_bytes:
            # The handler did its work, but its result cannot be kept: a
            # permanent failure (running it again would most likely return
            # as much), named as such rather than passed off as a handler error.
            error = (
                f"result too large: {len(encoded)} bytes of JSON, the limit is "
                f"{self._max_result_bytes} (TASKQUEUE_MAX_RESULT_BYTES)"
            )
            return self._failed(attempt, OutcomeKind.PERMANENT, error, reason="result_too_large")
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("task %s (%s) succeeded, attempt %d", task.id, task.type, task.attempt)
        return Outcome(
            task_id=task.id,
            attempt=task.attempt,
            kind=OutcomeKind.SUCCEEDED,
            result=encoded,
        )

    def _cut_short(self, attempt: Attempt, cut: str) -> Outcome:
        task = attempt.task
        if cut == "timeout":
            error = f"timed out after {task.timeout_seconds:g} seconds"
            # A timeout is a TimeoutError to the type's retry policy.
            return self._failed(attempt, OutcomeKind.TIMEOUT, error, exc=TimeoutError(error))
        if cut == CANCELLED:
            logger.info(
                "task %s (%s): cancelled by an operator; handler stopped", task.id, task.type
            )
        elif cut != SHUTDOWN:
            logger.warning(
                "task %s (%s): stopped the handler, its lease could not be kept (%s)",
                task.id,
                task.type,
                cut,
            )
        return Outcome(task_id=task.id, attempt=task.attempt, kind=OutcomeKind.RELEASED, reason=cut)

    def _failed(
        self,
        attempt: Attempt,
        kind: OutcomeKind,
        error: str,
        *,
        reason: str | None = None,
        exc: BaseException | None = None,
    ) -> Outcome:
        """A failure outcome, logged in one line: retried or not, and when."""
        task = attempt.task
        spec = self._registry.get(task.type)
        policy = spec.retry if spec is not None else None
        backoff = (spec.backoff if spec else None) or self._backoff
        rule: str | None = None
        exception: str | None = None
        max_elapsed: float | None = None
        planned: float | None = None  # the policy's delay, when it retries
        if policy is not None:
            exception = type(exc).__name__ if exc is not None else None
            if kind is OutcomeKind.PERMANENT or exc is None:
                rule = Rule.PERMANENT
            else:
                decision = decide(
                    policy, exc, attempt=task.attempt, max_retries=task.max_retries, backoff=backoff
                )
                rule, planned = decision.rule, decision.delay
                if not decision.retry and decision.rule is not Rule.MAX_RETRIES:
                    # Fails whatever attempts are left; the event says it was
                    # an error (or timeout), and the rule why it ends here.
                    reason, kind = kind.value, OutcomeKind.PERMANENT
                max_elapsed = policy.max_elapsed
        retries = kind is not OutcomeKind.PERMANENT and task.attempt <= task.max_retries
        delay = 0.0
        if retries:
            delay = backoff.delay(task.attempt) if planned is None else planned
            then = f"retry in {delay:.3g}s"
        else:
            then = f"no retry ({rule}): failed" if rule else "no retry: failed"
        logger.warning(
            "task %s failed: type=%s queue=%s attempt=%d/%d outcome=%s, %s: %s",
            task.id,
            task.type,
            task.queue,
            task.attempt,
            task.max_retries + 1,
            reason or kind.value,
            then,
            error,
        )
        return Outcome(
            task_id=task.id,
            attempt=task.attempt,
            kind=kind,
            error=error,
            retry_delay=delay,
            reason=reason,
            rule=rule,
            exception=exception,
            max_elapsed=max_elapsed,
        )


def _encode_result(result: Any) -> Any:
    if result is None:
        return None
    try:
        return msgspec.Raw(msgspec.json.encode(result))
    except (TypeError, msgspec.EncodeError):
        return {"unserialisable_result": type(result).__name__}
