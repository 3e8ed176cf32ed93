"""A worker process: connects, composes the parts and handles stop requests.

The path of a task: the dispatcher claims it into the in-flight ledger, an
executor takes it from there and runs its handler, the completer records the
outcome and tells the ledger, which lets it go. The lease keeper renews what
the ledger holds; the rescuer takes back other workers' expired leases; the
listener turns enqueue NOTIFYs into dispatcher wakeups.

Stopping (SIGTERM/SIGINT, or ``request_stop()``): claiming stops at once;
claimed tasks that never started are released; running ones get
``shutdown_timeout`` seconds to finish, then are interrupted and released (the
attempt is not charged); every outcome is recorded before the process exits.
A second request during that wait stops the running handlers at once. A stop
while the database is still being reached ends the worker straight away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from typing import Any

import asyncpg

from taskqueue import db, store
from taskqueue.config import Settings
from taskqueue.errors import TaskQueueError
from taskqueue.models import Outcome
from taskqueue.observability.metrics import ENQUEUED, MetricsServer, WorkerMetrics, build_registry
from taskqueue.observability.readings import WorkerReadings
from taskqueue.pooler import Pooler
from taskqueue.registry import Registry
from taskqueue.retrying import ReconnectDelay, is_transient
from taskqueue.worker.completer import Completer
from taskqueue.worker.dependencies import DependencyReconciler
from taskqueue.worker.dispatcher import POLL_ONLY_CAP, Dispatcher
from taskqueue.worker.executor import ExecutorPool
from taskqueue.worker.expiry import ExpirySweep
from taskqueue.worker.heartbeat import Heartbeat
from taskqueue.worker.inflight import SHUTDOWN, InFlight
from taskqueue.worker.lanes import LaneKeeper
from taskqueue.worker.leases import LeaseKeeper, Rescuer
from taskqueue.worker.listener import Listener
from taskqueue.worker.loop import PeriodicLoop
from taskqueue.worker.partitions import PartitionKeeper
from taskqueue.worker.pruner import Pruner
from taskqueue.worker.scheduler import Scheduler
from taskqueue.worker.sealer import HistorySealer
from taskqueue.worker.unhandled import UnhandledTypes

logger = logging.getLogger("taskqueue.worker")

# After interrupting handlers, how long they get to unwind before their
# coroutines are cancelled outright.
INTERRUPT_GRACE_SECONDS = 5.0
APPLICATION_NAME = "taskqueue-worker"


class DatabaseUnusable(TaskQueueError):
    """The database refuses this worker in a way retrying will not fix (no
    such database, wrong password, an invalid option, no taskqueue schema)."""


def make_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


class Worker:
    """``metrics``: what this worker counts for Prometheus; by default a new
    one when TASKQUEUE_METRICS_PORT is set (and served there), else nothing
    is counted."""

    def __init__(
        self, settings: Settings, registry: Registry, *, metrics: WorkerMetrics | None = None
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.worker_id = settings.worker_id or make_worker_id()
        self.types = registry.names()
        self.inflight = InFlight(
            concurrency=settings.concurrency,
            max_prefetch=settings.prefetch,
            lease_seconds=settings.lease_seconds,
        )
        self.started = asyncio.Event()
        self._stop = asyncio.Event()
        self._stop_now = asyncio.Event()
        self.pool: asyncpg.Pool | None = None
        self.pooler = Pooler(settings.pooler)  # what is behind DATABASE_URL, once connected
        self.dispatcher: Dispatcher | None = None
        self.completer: Completer | None = None
        self.executors: ExecutorPool | None = None
        self.listener: Listener | None = None
        self.lease_keeper: LeaseKeeper | None = None
        self.rescuer: Rescuer | None = None
        self.loops: list[PeriodicLoop] = []
        if metrics is None and settings.metrics_port is not None:
            metrics = WorkerMetrics()
        self.metrics = metrics
        if metrics is not None:
            metrics.read_from(self.readings)
        self.metrics_server: MetricsServer | None = None

    def readings(self) -> WorkerReadings:
        """What the parts have counted so far, and what they hold now, as
        the metrics name it (parts not yet started read as zeros)."""
        ledger = self.inflight.readings()
        dispatcher = self.dispatcher.readings() if self.dispatcher else {}
        completer = self.completer.readings() if self.completer else {}
        keeper = self.lease_keeper.readings() if self.lease_keeper else {}
        rescuer = self.rescuer.readings() if self.rescuer else {}
        listener = self.listener.readings() if self.listener else {}
        executors = self.executors.readings() if self.executors else {}
        reconnects = {
            "claim": dispatcher.get("retries", 0),
            "complete": completer.get("retries", 0),
            "listen": listener.get("reconnects", 0),
        }
        for loop in self.loops:
            reconnects[loop.name] = loop.readings()["failures"]
        return WorkerReadings(
            claim_statements=dispatcher.get("claims", 0),
            claimed_tasks=ledger["claimed"],
            completion_statements=completer.get("statements", 0),
            completed_tasks=completer.get("recorded", 0),
            stale_outcomes=completer.get("stale", 0),
            lease_renewal_statements=keeper.get("renewals", 0),
            lease_renewed_tasks=keeper.get("renewed", 0),
            leases_lost=ledger["lost"],
            rescued_tasks=rescuer.get("rescued", 0),
            reconnects=reconnects,
            worker_in_flight=executors.get("running", 0),
            worker_capacity=ledger["concurrency"],
            worker_held=ledger["held"],
            worker_outcomes_pending=completer.get("pending", 0),
        )

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def request_stop(self) -> None:
        """First call: stop gracefully. A second one: stop running handlers now."""
        if self._stop.is_set():
            if not self._stop_now.is_set():
                logger.warning("stopping now: interrupting running tasks")
            self._stop_now.set()
        self._stop.set()

    async def run(self) -> None:
        s = self.settings
        if self.metrics is not None and s.metrics_port is not None:
            # Up before the database is reached: reconnects are worth seeing too.
            registry = build_registry(self.metrics.collect, ENQUEUED.collect)
            self.metrics_server = MetricsServer(registry, s.metrics_host, s.metrics_port)
            self.metrics_server.start()
        try:
            pool = await self._open_pool()
            if pool is None:
                logger.info("worker %s stopped before it started", self.worker_id)
                return
            self.pool = pool
            try:
                await self._run_with(pool)
            finally:
                await pool.close()
                logger.info("worker %s stopped", self.worker_id)
        finally:
            if self.metrics_server is not None:
                self.metrics_server.stop()

    async def _run_with(self, pool: asyncpg.Pool) -> None:
        s, inflight, metrics = self.settings, self.inflight, self.metrics
        listen_url = self._listen_url()
        completer = self.completer = Completer(
            pool,
            self.worker_id,
            batch_size=s.complete_batch_size,
            interval=s.complete_interval,
            on_recorded=inflight.recorded,
            has_callback=inflight.has_callback,
        )
        executors = self.executors = ExecutorPool(
            inflight,
            self.registry,
            worker_id=self.worker_id,
            backoff=s.backoff,
            submit=completer.submit,
            on_finished=None if metrics is None else metrics.finished,
            max_result_bytes=s.max_result_bytes,
        )
        inflight.on_dropped = completer.submit
        if metrics is not None:

            def dropped(outcome: Outcome) -> None:
                # Released before it started: counted like every other ending.
                attempt = inflight.attempt(outcome.task_id)
                if attempt is not None:
                    metrics.finished(attempt.task, outcome, None)
                completer.submit(outcome)

            inflight.on_dropped = dropped
        inflight.on_stop = executors.interrupt
        dispatcher = self.dispatcher = Dispatcher(
            pool,
            inflight,
            queues=s.queues,
            types=self.types,
            parent_result_types=self.registry.parent_result_types(),
            worker_id=self.worker_id,
            lease_seconds=s.lease_seconds,
            poll_interval=s.poll_interval,
            on_claimed=None if metrics is None else metrics.claimed,
            listening=bool(listen_url),
        )
        listener = self.listener = (
            Listener(
                listen_url,
                s.queues,
                dispatcher.wake,
                worker_id=self.worker_id,
                cancel=inflight.cancel,
                settings_changed=dispatcher.settings_changed,
            )
            if listen_url
            else None
        )
        heartbeat = Heartbeat(
            pool,
            inflight,
            worker_id=self.worker_id,
            queues=s.queues,
            types=self.types,
            interval=s.heartbeat_seconds,
        )
        await heartbeat.announce("running")  # registers the worker
        self.lease_keeper = LeaseKeeper(
            pool, inflight, worker_id=self.worker_id, lease_seconds=s.lease_seconds
        )
        self.rescuer = Rescuer(pool, worker_id=self.worker_id, interval=s.lease_seconds / 2)
        loops = self.loops = [
            heartbeat,
            self.lease_keeper,
            self.rescuer,
            LaneKeeper(pool, queues=s.queues, types=self.types),
            UnhandledTypes(pool, queues=s.queues, types=self.types),
            Scheduler(pool, self.registry, worker_id=self.worker_id),
            PartitionKeeper(pool, retain_events=s.retention.events, direct_url=s.direct_url),
            Pruner(pool, worker_id=self.worker_id, retention=s.retention),
            ExpirySweep(pool, worker_id=self.worker_id, interval=s.expiry_interval),
            DependencyReconciler(pool, worker_id=self.worker_id),
            HistorySealer(pool, interval=s.seal_interval),
        ]
        completing = asyncio.create_task(completer.run(), name="completer")
        background = [
            completing,
            *([asyncio.create_task(listener.run(), name="listener")] if listener else []),
            *(asyncio.create_task(loop.run(), name=loop.name) for loop in loops),
        ]
        running = [
            asyncio.create_task(executors.run_loop(), name=f"executor-{i}")
            for i in range(s.concurrency)
        ]
        claiming = asyncio.create_task(dispatcher.run(), name="dispatcher")
        logger.info(
            "worker %s started: queues=%s concurrency=%d types=%s",
            self.worker_id,
            ",".join(s.queues),
            s.concurrency,
            ",".join(self.types),
        )
        # Started means listening too: a wakeup or a cancel sent before the
        # LISTEN is up would wait for the poll or the next lease renewal.
        if listener is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(listener.connected.wait(), 5)
        self.started.set()
        try:
            crashed = await _until_stop_or_crash(self._stop, [claiming, *background, *running])
            if crashed is not None:
                raise crashed
        finally:
            await heartbeat.announce("stopping")
            await self._shut_down(claiming, running, completer, completing)
            if listener is not None:
                listener.stop()
            for loop in loops:
                loop.stop()
            _, pending = await asyncio.wait(background, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await heartbeat.announce("stopped")

    def _listen_url(self) -> str:
        """Where to LISTEN: the direct URL, else DATABASE_URL unless a pooler
        is behind it (then nowhere: the dispatcher polls)."""
        s = self.settings
        if s.direct_url:
            return s.direct_url
        if self.pooler.allows_listen:
            return s.require_database_url()
        logger.warning(
            "DATABASE_URL leads to a connection pooler and TASKQUEUE_DIRECT_URL is not set:"
            " no LISTEN wakeups, so this worker polls (new tasks wait up to %.1fs) and"
            " cancels reach running tasks at the next lease renewal;"
            " set TASKQUEUE_DIRECT_URL to the server itself for millisecond pickup",
            min(s.poll_interval, POLL_ONLY_CAP),
        )
        return ""

    async def _shut_down(
        self,
        claiming: asyncio.Task[None],
        running: list[asyncio.Task[None]],
        completer: Completer,
        completing: asyncio.Task[None],
    ) -> None:
        assert self.dispatcher is not None
        assert self.executors is not None
        self.dispatcher.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(claiming, 10)
        claiming.cancel()
        # Claimed but never started: back to the queue now, for other workers.
        self.inflight.stop_taking(len(running))
        busy = self.executors.running
        timeout = self.settings.shutdown_timeout
        if busy and not self._stop_now.is_set():
            logger.warning(
                "stopping: waiting up to %gs for %d running task(s) to finish"
                " (stop again, e.g. Ctrl-C, to interrupt them now)",
                timeout,
                busy,
            )
        if running:
            await self._until_stop_now(running, timeout)
        still = [task for task in running if not task.done()]
        if still:
            logger.warning("releasing %d running task(s) unfinished", self.executors.running)
            for attempt in self.inflight.leased():
                self.inflight.stop(attempt, SHUTDOWN)
            _, unwinding = await asyncio.wait(still, timeout=INTERRUPT_GRACE_SECONDS)
            for task in unwinding:
                task.cancel()
            await asyncio.gather(*unwinding, return_exceptions=True)
        completer.close()
        # Outcomes are kept while the database is away; give it a while (less
        # after a second stop request), then leave the rest to the rescuer.
        await self._until_stop_now([completing], timeout + 10)
        if not completing.done():
            await asyncio.wait([completing], timeout=5.0)
        if not completing.done():
            completing.cancel()
            logger.error(
                "%d outcomes not recorded at exit (their leases run out and a rescuer"
                " takes the tasks back)",
                completer.pending,
            )

    async def _until_stop_now(self, tasks: list[asyncio.Task[None]], seconds: float) -> None:
        """Wait for every one of ``tasks`` for up to ``seconds``, or until a
        second stop request."""
        if self._stop_now.is_set():
            return
        work = asyncio.ensure_future(asyncio.wait(tasks))
        stop_now = asyncio.ensure_future(self._stop_now.wait())
        try:
            await asyncio.wait([work, stop_now], timeout=seconds, return_when="FIRST_COMPLETED")
        finally:
            work.cancel()  # cancels the waiting, not what it waits for
            stop_now.cancel()

    async def _open_pool(self) -> asyncpg.Pool | None:
        """The pool, once the database answers; None if a stop came first.
        Transient failures are retried with backoff, each said once;
        permanent ones raise DatabaseUnusable."""
        s = self.settings
        dsn = s.require_database_url()
        retry = ReconnectDelay(first=0.2)
        while not self._stop.is_set():
            opening = asyncio.ensure_future(
                db.create_pool(
                    dsn,
                    min_size=1,
                    max_size=6,
                    application_name=APPLICATION_NAME,
                    pooler=self.pooler,
                    # Bounds every statement (and the cancellation of one that
                    # timed out) so that no loop hangs on a broken connection.
                    command_timeout=max(s.lease_seconds / 3, 1.0),
                    timeout=min(10.0, max(s.lease_seconds / 3, 1.0)),
                )
            )
            if not await _first(opening, self._stop):
                opening.cancel()
                with contextlib.suppress(BaseException):
                    await opening
                return None
            try:
                pool = opening.result()
            except Exception as exc:
                reason = _permanent_reason(exc)
                if reason is not None:
                    raise DatabaseUnusable(f"cannot use the database: {reason}") from None
                delay = retry.next_delay()
                logger.warning(
                    "database unreachable (%s); retrying in %.1fs", _describe(exc), delay
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                continue
            try:
                await _check_schema(pool)
            except BaseException:
                await pool.close()
                raise
            return pool
        return None


async def _check_schema(pool: asyncpg.Pool) -> None:
    from taskqueue.db import known_migrations

    try:
        applied = set(await store.applied_migrations(pool))
    except asyncpg.InsufficientPrivilegeError:
        raise DatabaseUnusable(
            "cannot use the database: cannot read which migrations are applied"
            " (public._yoyo_migration):"
            " grant the worker's role SELECT on it (deploy/postgres/roles.sql does)"
        ) from None
    missing = [m for m in known_migrations() if m not in applied]
    if missing:
        what = (
            "has no taskqueue schema" if not applied else f"lacks migrations {', '.join(missing)}"
        )
        raise DatabaseUnusable(f"cannot use the database: it {what}: run `taskqueue migrate` first")


def _permanent_reason(exc: BaseException) -> str | None:
    """Why connecting can never work as configured, or None if it may."""
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"the database does not exist ({exc})"
    if isinstance(
        exc, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError
    ):
        return f"authentication failed ({exc})"
    if isinstance(exc, asyncpg.ClientConfigurationError):
        return f"invalid connection setting ({exc})"
    if isinstance(exc, ValueError):
        return f"invalid database URL ({exc})"
    if isinstance(exc, asyncpg.PostgresError) and not is_transient(exc):
        return str(exc)
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _first(work: asyncio.Future[Any], stop: asyncio.Event) -> bool:
    """Wait for ``work`` or ``stop``; True when ``work`` finished first."""
    stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([work, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    return work.done()


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
