"""Persists outcomes in batches: one fenced statement per flush.

Outcomes wait a couple of milliseconds (or until a batch fills) so that many
share one statement and one commit. On connection loss they are kept and the
flush is retried with backoff; none is dropped. What it recorded is reported
to ``on_recorded`` as values (the in-flight ledger lets go of those attempts)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence

import asyncpg

from taskqueue import store
from taskqueue.models import Outcome, OutcomeKind
from taskqueue.retrying import ReconnectDelay, is_transient
from taskqueue.worker.executor import describe_error

logger = logging.getLogger("taskqueue.completer")


class Completer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        worker_id: str,
        *,
        batch_size: int = 1000,
        interval: float = 0.002,
        on_recorded: Callable[[Sequence[Outcome]], None] | None = None,
        has_callback: Callable[[uuid.UUID], bool] | None = None,
    ) -> None:
        self._pool = pool
        # Whether a task's end queues a callback: a batch with one takes the
        # statement that queues them, the others the plain one.
        self._has_callback = has_callback
        self._worker_id = worker_id
        self._batch_size = batch_size
        self._interval = interval
        self._on_recorded = on_recorded
        self._pending: list[Outcome] = []
        self._has_work = asyncio.Event()
        self._closing = False
        self.stale = 0  # outcomes fenced out: the lease had been lost
        self.recorded = 0
        self.statements = 0  # flushes that reached the database
        self.retries = 0  # flushes that failed for a passing reason

    @property
    def pending(self) -> int:
        return len(self._pending)

    def readings(self) -> dict[str, int]:
        """What it has counted (flushes sent, outcomes recorded, outcomes
        fenced out, flushes retried) and the outcomes waiting now."""
        return {
            "statements": self.statements,
            "recorded": self.recorded,
            "stale": self.stale,
            "retries": self.retries,
            "pending": len(self._pending),
        }

    def submit(self, outcome: Outcome) -> None:
        self._pending.append(outcome)
        self._has_work.set()

    def close(self) -> None:
        """Finish: ``run`` returns once everything pending is recorded."""
        self._closing = True
        self._has_work.set()

    async def run(self) -> None:
        """Flush until closed and nothing is pending."""
        retry = ReconnectDelay()
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._has_work.clear()
                await self._has_work.wait()
                continue
            if len(self._pending) < self._batch_size and self._interval and not self._closing:
                await asyncio.sleep(self._interval)  # let the batch grow
            try:
                await self.run_once()
                retry.reset()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self.retries += 1
                delay = retry.next_delay()
                logger.warning(
                    "cannot record %d outcomes (%s); retrying in %.2fs",
                    len(self._pending),
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)

    async def run_once(self) -> int:
        """Flush one batch; returns how many outcomes it recorded."""
        batch = self._pending[: self._batch_size]
        if not batch:
            return 0
        try:
            done = await store.complete_tasks(
                self._pool, batch, self._worker_id, callbacks=self._any_callback(batch)
            )
        except asyncpg.PostgresError as exc:
            if is_transient(exc):
                raise
            # One bad value (say, a result PostgreSQL will not store) must not
            # block the batch: record the others one by one.
            done = await self._flush_singly(batch)
        del self._pending[: len(batch)]
        self.statements += 1
        stale = len(batch) - len(done)
        if stale:
            self.stale += stale
            logger.warning("%d outcomes arrived after their lease was lost; ignored", stale)
        self.recorded += len(done)
        if self._on_recorded is not None:
            self._on_recorded(batch)
        return len(batch)

    def _any_callback(self, outcomes: list[Outcome]) -> bool:
        has = self._has_callback
        return has is not None and any(has(o.task_id) for o in outcomes)

    async def _flush_singly(self, batch: list[Outcome]) -> set[uuid.UUID]:
        done: set[uuid.UUID] = set()
        for outcome in batch:
            try:
                done |= await store.complete_tasks(
                    self._pool, [outcome], self._worker_id, callbacks=self._any_callback([outcome])
                )
            except asyncpg.PostgresError as exc:
                if is_transient(exc):
                    raise
                logger.error("task %s: outcome could not be stored: %s", outcome.task_id, exc)
                replacement = Outcome(
                    task_id=outcome.task_id,
                    attempt=outcome.attempt,
                    kind=OutcomeKind.ERROR,
                    error=f"outcome could not be stored: {describe_error(exc)}",
                    retry_delay=outcome.retry_delay,
                )
                try:
                    done |= await store.complete_tasks(
                        self._pool,
                        [replacement],
                        self._worker_id,
                        callbacks=self._any_callback([replacement]),
                    )
                except asyncpg.PostgresError as again:
                    if is_transient(again):
                        raise
                    # Left running: its lease runs out and the rescuer retries it.
                    logger.error("task %s: giving up on its outcome: %s", outcome.task_id, again)
        return done
