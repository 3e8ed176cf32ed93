"""The commands that run taskqueue's long-lived processes: ``taskqueue worker
| api | run``, and ``bench``, which runs them under load.

Named for what the commands start; the event loop, signals and uvicorn set-up
they share are ``taskqueue.serve``'s (also used by tests in-process)."""

from __future__ import annotations

import argparse
import asyncio
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from taskqueue import db
from taskqueue.cli.database import embedded_server
from taskqueue.cli.output import emit_json
from taskqueue.config import ConfigError, Settings, mask_password
from taskqueue.registry import Registry, load_registry

if TYPE_CHECKING:
    from litestar import Litestar
    from prometheus_client.metrics_core import Metric


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from taskqueue.serve import on_signal, run_loop, tune_gc_for_throughput
    from taskqueue.worker import Worker

    registry = load_registry(settings.handlers)
    worker = Worker(settings, registry)
    tune_gc_for_throughput()

    async def main() -> None:
        on_signal(worker.request_stop)
        await worker.run()

    run_loop(main)
    return 0


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    from taskqueue.serve import api_server, on_signal, run_loop, tune_gc_for_throughput

    _check_binding(settings)
    server = api_server(_api_app(settings), settings)
    tune_gc_for_throughput()

    async def main() -> None:
        on_signal(lambda: setattr(server, "should_exit", True))
        await server.serve()

    run_loop(main)
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Everything a newcomer needs in one process: database, API, worker."""
    from taskqueue.observability.metrics import WorkerMetrics
    from taskqueue.serve import api_server, on_signal, run_loop, tune_gc_for_throughput
    from taskqueue.worker import Worker

    require_free_port(settings.host, settings.port)
    server_db = None
    if not settings.database_url:
        server_db = embedded_server()
        server_db.claim("taskqueue run")  # refused while another run uses it
        if server_db.running_port() is None:
            print(f"starting PostgreSQL (data in {server_db.data_dir}) …", flush=True)
        else:
            print(
                f"using the PostgreSQL already running in {server_db.data_dir} "
                "(left running at exit; `taskqueue embedded stop` stops it)",
                flush=True,
            )
        settings = msgspec.structs.replace(settings, database_url=server_db.start())
    try:
        db.migrate(settings.direct_url or settings.require_database_url())
        _check_binding(settings)
        registry = load_registry(settings.handlers)
        # Counted always: the API's /metrics serves the worker's numbers too.
        worker = Worker(settings, registry, metrics=WorkerMetrics())
        assert worker.metrics is not None
        app = _api_app(settings, registry, metrics_also=[worker.metrics.collect])
        server = api_server(app, settings)
        tune_gc_for_throughput()

        def stop() -> None:
            # Each signal goes on to the worker: a second Ctrl-C interrupts
            # its running tasks at once.
            server.should_exit = True
            worker.request_stop()

        async def main() -> None:
            on_signal(stop)
            api = asyncio.create_task(server.serve())
            work = asyncio.create_task(worker.run())
            await _announce(server, settings, settings.require_database_url())
            await asyncio.wait([api, work], return_when=asyncio.FIRST_COMPLETED)
            # One part ended (after a signal, or it failed): stop the other too,
            # without counting as a second stop request for the worker.
            server.should_exit = True
            if not worker.stopping:
                worker.request_stop()
            await asyncio.gather(api, work)

        run_loop(main)
    finally:
        if server_db is not None:
            if server_db.started_here:  # never a server someone else started
                server_db.stop()
                print("stopped PostgreSQL", flush=True)
            server_db.release()
    return 0


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from taskqueue.benchmark.options import CLAIM_KEY_OPTIONS, PRESSURE_LONG
    from taskqueue.benchmark.runner import PHASES, Options, render_table, run_benchmark

    phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    if "pooling" in phases:
        return _bench_pooling(args, phases)
    unknown = set(phases) - set(PHASES)
    if unknown:
        raise ConfigError(
            f"--phases: unknown {', '.join(sorted(unknown))}; known: {', '.join(PHASES)}"
        )
    rate_text = args.pressure_rate.strip()
    try:
        share = float(rate_text[:-1]) / 100 if rate_text.endswith("%") else None
        rate = 0.0 if share is not None else float(rate_text)
    except ValueError:
        raise ConfigError(f"--pressure-rate: not a number or N%: {rate_text!r}") from None
    if (share is not None and share <= 0) or (share is None and rate <= 0):
        raise ConfigError("--pressure-rate must be positive")
    if min(args.pressure_clean, args.pressure_recovery, args.pressure_pinned) < 0 or (
        args.pressure_window <= 0
    ):
        raise ConfigError("--pressure-*: stages need 0 s or more, windows more than 0 s")
    if args.crash_runs < 1:
        raise ConfigError("--crash-runs must be 1 or more")
    options = Options(
        history_rows=args.history_rows,
        pressure_rate=rate or 1000.0,
        pressure_rate_share=share,
        pressure_clean=args.pressure_clean,
        pressure_pinned=PRESSURE_LONG if args.pressure_long else args.pressure_pinned,
        pressure_recovery=args.pressure_recovery,
        pressure_window=args.pressure_window,
        pressure_workers=args.pressure_workers,
        pressure_concurrency=args.pressure_concurrency,
        workflow_width=args.workflow_width,
        crash_runs=args.crash_runs,
        **{name: getattr(args, name) for name in CLAIM_KEY_OPTIONS},
        single_n=args.single_n,
        bulk_n=args.bulk_n,
        drain_n=args.drain_n,
        pickup_n=args.pickup_n,
        depth_n=args.depth_n,
        depth_drain=args.depth_drain,
        rest_seconds=args.rest_seconds,
        reps=args.reps,
        phases=phases,
        database_url=settings.database_url,
        quiet=args.quiet or args.json,
        load=args.load,
    )
    report = asyncio.run(run_benchmark(options))
    if args.json:
        emit_json(report)
    else:
        print(render_table(report))
    return 0


def _bench_pooling(args: argparse.Namespace, phases: tuple[str, ...]) -> int:
    """``--phases pooling``: a fleet of worker processes through a real
    PgBouncer against the same fleet connected directly (or, with
    --pooling-soak-seconds, a soak through it); a text report of its own."""
    from taskqueue.benchmark import pooling

    if phases != ("pooling",):
        raise ConfigError("--phases pooling runs on its own")
    if args.pooling_workers < 1 or args.pooling_soak_seconds < 0:
        raise ConfigError("--pooling-workers must be positive, --pooling-soak-seconds not negative")
    return asyncio.run(
        pooling.main(
            pooling.Settings(
                workers=args.pooling_workers,
                soak_seconds=args.pooling_soak_seconds,
                soak_rate=args.pooling_soak_rate,
            )
        )
    )


def _check_binding(settings: Settings) -> None:
    """Refuse to serve the API beyond loopback without tokens."""
    from taskqueue.http.auth import Authenticator, check_binding

    check_binding(settings, Authenticator.from_settings(settings))


def _api_app(
    settings: Settings,
    registry: Registry | None = None,
    *,
    metrics_also: Sequence[Callable[[], Iterator[Metric]]] = (),
) -> Litestar:
    # The one place the command line names the app factory (imported late:
    # `taskqueue --help` and the operator's commands never load the API).
    from taskqueue.app import create_app

    return create_app(settings, registry, metrics_also=metrics_also)


def require_free_port(host: str, port: int) -> None:
    """Fail before touching anything when the API's port is taken (by another
    `make run`, say), rather than after starting a database."""
    if port == 0:
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            probe.bind(address)
    except OSError as exc:
        raise ConfigError(
            f"{host}:{port} is in use ({exc.strerror or exc}): is another `make run` or "
            "`taskqueue api` running? Stop it, or set TASKQUEUE_PORT"
        ) from None


async def _announce(server: Any, settings: Settings, dsn: str) -> None:
    while not server.started and not server.should_exit:  # noqa: ASYNC110 - uvicorn offers a flag only
        await asyncio.sleep(0.05)
    if not server.started:
        return
    base = f"http://{settings.host}:{settings.port}"
    auth = ' -H "Authorization: Bearer $TOKEN"' if settings.api_tokens else ""
    print(
        f"""
taskqueue is running  (Ctrl-C stops everything)
  API       {base}/api/tasks      docs {base}/schema
  health    {base}/health   {base}/ready   metrics {base}/metrics
  database  {mask_password(dsn)}   (make psql)
  worker    queues={",".join(settings.queues)} concurrency={settings.concurrency}

try:
  curl -s -X POST {base}/api/tasks -H 'Content-Type: application/json'{auth} \\
       -d '{{"type": "noop", "name": "hello", "payload": {{"hello": "world"}}}}'
  curl -s {base}/api/tasks/<id>/history{auth}
""",
        flush=True,
    )
