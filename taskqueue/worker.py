"""A worker process: dispatcher, executor pool, completer, lease keeper,
rescuer and LISTEN connection, wired together, with graceful shutdown.

Shutdown (SIGTERM/SIGINT): claiming stops at once; claimed tasks that never
started are released; running ones get ``shutdown_timeout`` seconds to finish,
then are interrupted and released (the attempt is not charged); every outcome
is recorded before the process exits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
import uuid
from collections.abc import Sequence

import asyncpg

from taskqueue import db
from taskqueue.completer import Completer
from taskqueue.config import Settings
from taskqueue.dispatcher import Dispatcher, RunTimes
from taskqueue.executor import Attempt, execute, outcome_for_unstarted
from taskqueue.listener import Listener
from taskqueue.maintenance import LeaseKeeper, Rescuer
from taskqueue.models import Outcome
from taskqueue.registry import Registry
from taskqueue.retrying import ReconnectDelay, is_transient

logger = logging.getLogger("taskqueue.worker")

# After interrupting handlers at the shutdown deadline, how long they get to
# unwind before their coroutines are cancelled outright.
INTERRUPT_GRACE_SECONDS = 5.0


def make_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


class Worker:
    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        self.worker_id = settings.worker_id or make_worker_id()
        self.held: dict[uuid.UUID, Attempt] = {}
        self.run_times = RunTimes()
        self._ready: asyncio.Queue[Attempt | None] = asyncio.Queue()
        self._stop = asyncio.Event()
        self.started = asyncio.Event()
        self.pool: asyncpg.Pool | None = None
        self.dispatcher: Dispatcher | None = None
        self.completer: Completer | None = None
        self.listener: Listener | None = None

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        s = self.settings
        dsn = s.require_database_url()
        pool = self.pool = await _open_pool(dsn)
        dispatcher = self.dispatcher = Dispatcher(
            pool,
            queues=s.queues,
            worker_id=self.worker_id,
            lease_seconds=s.lease_seconds,
            concurrency=s.concurrency,
            max_prefetch=s.prefetch,
            run_times=self.run_times,
            poll_interval=s.poll_interval,
            held=self.held,
            ready=self._ready,
        )
        completer = self.completer = Completer(
            pool,
            self.worker_id,
            batch_size=s.complete_batch_size,
            interval=s.complete_interval,
            on_flushed=self._on_flushed,
        )
        listener = self.listener = Listener(dsn, s.queues, dispatcher.wake)
        lease_keeper = LeaseKeeper(
            pool, worker_id=self.worker_id, lease_seconds=s.lease_seconds, held=self.held
        )
        rescuer = Rescuer(pool, worker_id=self.worker_id, interval=s.lease_seconds / 2)

        background = [
            asyncio.create_task(completer.run(), name="completer"),
            asyncio.create_task(listener.run(), name="listener"),
            asyncio.create_task(lease_keeper.run(), name="lease keeper"),
            asyncio.create_task(rescuer.run(), name="rescuer"),
        ]
        executors = [
            asyncio.create_task(self._execute_forever(), name=f"executor-{i}")
            for i in range(s.concurrency)
        ]
        claiming = asyncio.create_task(dispatcher.run(), name="dispatcher")
        logger.info(
            "worker %s started: queues=%s concurrency=%d types=%s",
            self.worker_id,
            ",".join(s.queues),
            s.concurrency,
            ",".join(self.registry.names()),
        )
        self.started.set()
        try:
            crashed = await _until_stop_or_crash(self._stop, [claiming, *background, *executors])
            if crashed is not None:
                raise crashed
        finally:
            await self._shut_down(claiming, executors, completer, background)
            listener.stop()
            lease_keeper.stop()
            rescuer.stop()
            await asyncio.gather(*background, return_exceptions=True)
            await pool.close()
            logger.info("worker %s stopped", self.worker_id)

    async def _shut_down(
        self,
        claiming: asyncio.Task[None],
        executors: list[asyncio.Task[None]],
        completer: Completer,
        background: list[asyncio.Task[None]],
    ) -> None:
        assert self.dispatcher is not None
        self.dispatcher.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(claiming, 10)
        claiming.cancel()
        # Claimed but never started: back to the queue now, for other workers.
        while not self._ready.empty():
            attempt = self._ready.get_nowait()
            if attempt is not None:
                attempt.finished = True
                completer.submit(outcome_for_unstarted(attempt.task.id, attempt.task.attempt))
        for _ in executors:
            self._ready.put_nowait(None)
        _done, running = await asyncio.wait(executors, timeout=self.settings.shutdown_timeout)
        if running:
            in_flight = [a for a in self.held.values() if not a.finished]
            logger.warning("shutdown timeout: releasing %d running tasks", len(in_flight))
            for attempt in in_flight:
                attempt.interrupt()
            _done, running = await asyncio.wait(running, timeout=INTERRUPT_GRACE_SECONDS)
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        completer.close()
        completer_task = next(t for t in background if t.get_name() == "completer")
        # Outcomes are kept while the database is away; give it a while, then
        # leave the rest to the rescuer (their leases run out).
        _done, pending = await asyncio.wait(
            [completer_task], timeout=self.settings.shutdown_timeout + 10
        )
        if pending:
            logger.error("%d outcomes not recorded at exit", completer.pending)

    async def _execute_forever(self) -> None:
        assert self.completer is not None
        ready, completer, registry = self._ready, self.completer, self.registry
        worker_id, backoff = self.worker_id, self.settings.backoff
        loop = asyncio.get_running_loop()
        runner = asyncio.current_task()
        assert runner is not None
        clock, record = time.perf_counter, self.run_times.record
        while True:
            attempt = await ready.get()
            if attempt is None:
                return
            started = clock()
            try:
                outcome = await execute(attempt, registry, worker_id, backoff, loop, runner)
            except asyncio.CancelledError:
                attempt.finished = True
                completer.submit(outcome_for_unstarted(attempt.task.id, attempt.task.attempt))
                raise
            record(clock() - started)
            attempt.finished = True
            completer.submit(outcome)

    def _on_flushed(self, outcomes: Sequence[Outcome], _recorded: set[uuid.UUID]) -> None:
        held = self.held
        for outcome in outcomes:
            attempt = held.get(outcome.task_id)
            if attempt is not None and attempt.task.attempt == outcome.attempt:
                del held[outcome.task_id]
        assert self.dispatcher is not None
        self.dispatcher.room_made()


async def _open_pool(dsn: str) -> asyncpg.Pool:
    """The pool, once the database answers: a worker waits out an outage."""
    retry = ReconnectDelay(first=0.2)
    while True:
        try:
            return await db.create_pool(
                dsn, min_size=1, max_size=4, application_name="taskqueue-worker"
            )
        except Exception as exc:
            if not is_transient(exc):
                raise
            delay = retry.next_delay()
            logger.warning("database unreachable (%s); retrying in %.2fs", exc, delay)
            await asyncio.sleep(delay)


async def _until_stop_or_crash(
    stop: asyncio.Event, tasks: list[asyncio.Task[None]]
) -> BaseException | None:
    """Wait for a stop request; if a loop dies first, return its exception."""
    stopper = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    for task in done:
        if task is not stopper and not task.cancelled() and task.exception() is not None:
            return task.exception()
    return None
