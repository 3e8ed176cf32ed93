"""``taskqueue`` command line: migrate, worker, enqueue, stats, and more."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from taskqueue import db, metrics
from taskqueue.config import ConfigError, Settings, mask_password
from taskqueue.embedded import EmbeddedPostgresError, find_bin_dir
from taskqueue.errors import TaskQueueError
from taskqueue.registry import load_registry

if TYPE_CHECKING:
    from taskqueue.embedded import EmbeddedPostgres

logger = logging.getLogger("taskqueue")


def _configure_logging(verbose: bool, settings: Settings | None = None) -> None:
    """Console logging until the settings are read, then as they say
    (TASKQUEUE_LOG_FORMAT, TASKQUEUE_LOG_LEVEL; their secrets masked)."""
    from taskqueue import logs

    if settings is None:
        logs.configure(verbose)
    else:
        logs.configure_from(settings, verbose)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    dsn = settings.require_database_url()
    if args.rollback is not None:
        if not args.yes:
            what = "every migration" if args.rollback == 0 else f"the newest {args.rollback}"
            raise ConfigError(
                f"--rollback undoes {what}, dropping their tables and data "
                f"on {mask_password(dsn)}: add --yes to go ahead"
            )
        undone = db.rollback(dsn, None if args.rollback == 0 else args.rollback)
        print(f"rolled back: {', '.join(undone) or 'nothing'}")
    else:
        applied = db.migrate(dsn)
        print(f"applied: {', '.join(applied) or 'nothing (up to date)'}")
    return 0


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
    from taskqueue.api.auth import Authenticator, check_binding
    from taskqueue.app import create_app
    from taskqueue.serve import api_server, on_signal, run_loop, tune_gc_for_throughput

    check_binding(settings, Authenticator.from_settings(settings))
    server = api_server(create_app(settings), settings.host, settings.port)
    tune_gc_for_throughput()

    async def main() -> None:
        on_signal(lambda: setattr(server, "should_exit", True))
        await server.serve()

    run_loop(main)
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Everything a newcomer needs in one process: database, API, worker."""
    from taskqueue.api.auth import Authenticator, check_binding
    from taskqueue.app import create_app
    from taskqueue.metrics import WorkerMetrics
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
        dsn = settings.require_database_url()
        db.migrate(dsn)
        check_binding(settings, Authenticator.from_settings(settings))
        registry = load_registry(settings.handlers)
        # Counted always: the API's /metrics serves the worker's numbers too.
        worker = Worker(settings, registry, metrics=WorkerMetrics())
        assert worker.metrics is not None
        app = create_app(settings, registry, metrics_also=[worker.metrics.collect])
        server = api_server(app, settings.host, settings.port)
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
            await _announce(server, settings, dsn)
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


def cmd_psql(args: argparse.Namespace, settings: Settings) -> int:
    """psql on the database `make run` uses. An embedded server this command
    had to start is stopped again when psql exits."""
    psql = shutil.which("psql") or str(find_bin_dir() / "psql")
    server = None if settings.database_url else embedded_server()
    if server is None or server.running_port() is not None:
        dsn = settings.database_url or embedded_server().start()
        os.execvp(psql, [psql, dsn, *args.psql_args])  # noqa: S606 - becomes psql, by design
    server.claim("taskqueue psql")
    try:
        dsn = server.start()
        # Ctrl-C belongs to psql (it cancels a query); this process waits.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return subprocess.call([psql, dsn, *args.psql_args])
        finally:
            signal.signal(signal.SIGINT, previous)
    finally:
        if server.started_here:
            server.stop()
        server.release()


def cmd_enqueue(args: argparse.Namespace, settings: Settings) -> int:
    from taskqueue.client import TaskQueue

    payload = json.loads(args.payload)

    async def main() -> None:
        registry = load_registry(settings.handlers)
        async with await TaskQueue.connect(settings.require_database_url(), registry) as tq:
            task = await tq.enqueue(
                args.type,
                payload,
                queue=args.queue,
                priority=args.priority,
                delay=args.delay,
                max_retries=args.max_retries,
                timeout_seconds=args.timeout,
                idempotency_key=args.idempotency_key,
                name=args.name,
            )
            print(msgspec.json.encode(task).decode())

    asyncio.run(main())
    return 0


def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    from taskqueue.client import TaskQueue

    async def main() -> None:
        async with await TaskQueue.connect(settings.require_database_url()) as tq:
            print(msgspec.json.format(msgspec.json.encode(await tq.stats())).decode())

    asyncio.run(main())
    return 0


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    """Check every task's event trail against the state machine; exit 1 on
    any violation."""
    from datetime import datetime

    from taskqueue.audit import audit

    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            raise ConfigError(f"--since: not an ISO 8601 time: {args.since!r}") from None
        if since.tzinfo is None:
            raise ConfigError("--since: give a time zone (e.g. 2026-01-31T12:00:00Z)")

    async def main() -> int:
        pool = await db.create_pool(settings.require_database_url(), max_size=1)
        try:
            report = await audit(pool, since)
        finally:
            await pool.close()
        shown = report.violations[: args.max_shown]
        for violation in shown:
            print(f"task {violation.task_id}: {violation.problem}")
        if len(report.violations) > len(shown):
            print(f"… and {len(report.violations) - len(shown)} more")
        bad = len({v.task_id for v in report.violations})
        print(
            f"audit: {report.tasks} tasks, {report.events} events checked; "
            + (f"{len(report.violations)} violation(s) in {bad} task(s)" if bad else "all sound")
        )
        return 1 if bad else 0

    return asyncio.run(main())


def cmd_schedules(args: argparse.Namespace, settings: Settings) -> int:
    """List, add, pause, resume, trigger, show and delete recurring tasks."""
    from taskqueue.client import TaskQueue

    def emit(value: object) -> None:
        print(msgspec.json.format(msgspec.json.encode(value)).decode())

    async def main() -> None:
        registry = load_registry(settings.handlers)
        async with await TaskQueue.connect(settings.require_database_url(), registry) as tq:
            if args.action == "list":
                page = await tq.list_schedules(limit=1000)
                rows = list(page)
                while len(page) == 1000:
                    page = await tq.list_schedules(after=page[-1].name, limit=1000)
                    rows.extend(page)
                print(_schedule_table(rows) if rows else "no schedules")
            elif args.action == "show":
                emit(await tq.schedule_details(args.name))
            elif args.action == "add":
                try:
                    payload = json.loads(args.payload)
                except ValueError as exc:
                    raise ConfigError(f"payload: not JSON: {exc}") from None
                emit(
                    await tq.add_schedule(
                        args.name,
                        type=args.type,
                        cron=args.cron,
                        every_seconds=args.every,
                        timezone=args.timezone,
                        payload=payload,
                        queue=args.queue,
                        priority=args.priority,
                        max_retries=args.max_retries,
                        timeout_seconds=args.timeout,
                        catch_up=args.catch_up,
                        overlap=args.overlap,
                    )
                )
            elif args.action == "pause":
                emit(await tq.pause_schedule(args.name))
            elif args.action == "resume":
                emit(await tq.resume_schedule(args.name))
            elif args.action == "trigger":
                emit(await tq.trigger_schedule(args.name))
            else:
                await tq.delete_schedule(args.name)
                print(f"deleted schedule {args.name!r} (the tasks it fired stay)")

    asyncio.run(main())
    return 0


def _schedule_table(rows: Sequence[Any]) -> str:
    from taskqueue.operate import table

    header = ("name", "when", "timezone", "type", "queue", "state", "source", "next run (UTC)")
    lines = [
        (
            s.name,
            s.cron if s.cron is not None else f"every {s.every_seconds}s",
            s.timezone,
            s.type,
            s.queue,
            "paused" if s.paused else "active",
            s.source,
            s.next_run_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
        for s in rows
    ]
    return table(header, lines)


def embedded_data_dir() -> Path:
    return Path(os.environ.get("TASKQUEUE_DATA_DIR", ".taskqueue")) / "pgdata"


def embedded_server() -> EmbeddedPostgres:
    """The development server `make run` uses: data kept in .taskqueue/pgdata."""
    from taskqueue.embedded import EmbeddedPostgres

    return EmbeddedPostgres(embedded_data_dir())


def cmd_embedded(args: argparse.Namespace, settings: Settings) -> int:
    server = embedded_server()
    if args.action == "start":
        print(server.start())
    elif args.action == "stop":
        server.stop()
    else:
        port = server.running_port()
        if port is None:
            print("embedded PostgreSQL is not running", file=sys.stderr)
            return 1
        server.port = port
        print(server.dsn())
    return 0


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from taskqueue.benchmark.runner import PHASES, Options, render_table, run_benchmark

    phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    unknown = set(phases) - set(PHASES)
    if unknown:
        raise ConfigError(
            f"--phases: unknown {', '.join(sorted(unknown))}; known: {', '.join(PHASES)}"
        )
    options = Options(
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
        print(msgspec.json.format(msgspec.json.encode(report)).decode())
    else:
        print(render_table(report))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskqueue", description="A task queue whose only infrastructure is PostgreSQL."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--database-url", help="PostgreSQL URL (default: $DATABASE_URL / $TASKQUEUE_DATABASE_URL)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    migrate = sub.add_parser("migrate", help="apply pending migrations (idempotent)")
    migrate.add_argument(
        "--rollback",
        type=int,
        metavar="N",
        help="roll back the newest N migrations instead (0: all of them); needs --yes",
    )
    migrate.add_argument(
        "--yes", action="store_true", help="confirm a --rollback (it drops tables and data)"
    )
    migrate.set_defaults(func=cmd_migrate)

    worker = sub.add_parser("worker", help="run a worker until SIGTERM/SIGINT")
    worker.add_argument("--queues", help="comma-separated queues (default: default)")
    worker.add_argument("--concurrency", type=int, help="tasks run at once (default 10)")
    worker.add_argument("--prefetch", type=int, help="claimed tasks waiting for a slot")
    worker.add_argument(
        "--handlers", help="comma-separated modules exposing `registry` (TASKQUEUE_HANDLERS)"
    )
    worker.add_argument("--shutdown-timeout", type=float, help="seconds to finish in-flight tasks")
    worker.add_argument("--lease-seconds", type=float, help="lease length (default 30)")
    worker.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics on this port (TASKQUEUE_METRICS_PORT; 0: any free"
        " port; bound to TASKQUEUE_METRICS_HOST, default 127.0.0.1)",
    )
    worker.set_defaults(func=cmd_worker)

    enqueue = sub.add_parser("enqueue", help="add one task and print it as JSON")
    enqueue.add_argument("type")
    enqueue.add_argument("payload", nargs="?", default="{}", help="JSON payload")
    enqueue.add_argument("--queue")
    enqueue.add_argument("--name", default="")
    enqueue.add_argument("--priority", type=int)
    enqueue.add_argument("--delay", type=float, help="seconds from now")
    enqueue.add_argument("--max-retries", type=int)
    enqueue.add_argument("--timeout", type=float, help="timeout in seconds")
    enqueue.add_argument("--idempotency-key")
    enqueue.add_argument("--handlers", help="modules whose task types may be enqueued")
    enqueue.set_defaults(func=cmd_enqueue)

    api = sub.add_parser("api", help="serve the REST API (TASKQUEUE_HOST/TASKQUEUE_PORT)")
    api.add_argument("--host", help="address to bind (default 127.0.0.1)")
    api.add_argument("--port", type=int, help="port (default 8000)")
    api.set_defaults(func=cmd_api)

    run = sub.add_parser(
        "run", help="embedded PostgreSQL (unless DATABASE_URL) + migrations + API + one worker"
    )
    run.add_argument("--host", help="address to bind (default 127.0.0.1)")
    run.add_argument("--port", type=int, help="port (default 8000)")
    run.add_argument("--handlers", help="modules exposing `registry`")
    run.set_defaults(func=cmd_run)

    psql = sub.add_parser(
        "psql",
        help="psql on the database `make run` uses; arguments after it go to psql",
        usage="taskqueue psql [psql arguments, e.g. -c 'SELECT 1']",
        add_help=False,
    )
    psql.set_defaults(func=cmd_psql, psql_args=[])

    bench = sub.add_parser(
        "bench", help="measure throughput, latency and memory (DATABASE_URL or embedded)"
    )
    bench.add_argument("--reps", type=int, default=3, help="repetitions; medians are reported")
    bench.add_argument("--phases", default="single,bulk,rest,drain,limited,pickup,unknown,depth")
    bench.add_argument("--single-n", type=int, default=5_000)
    bench.add_argument("--bulk-n", type=int, default=100_000)
    bench.add_argument("--drain-n", type=int, default=50_000)
    bench.add_argument("--pickup-n", type=int, default=500)
    bench.add_argument("--depth-n", type=int, default=1_000_000, help="tasks waiting, deep case")
    bench.add_argument(
        "--depth-drain", type=int, default=20_000, help="shallow depth, and tasks drained"
    )
    bench.add_argument("--rest-seconds", type=float, default=10.0)
    bench.add_argument(
        "--load",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="REST load generator (auto: wrk when installed, else a Python process)",
    )
    bench.add_argument("--json", action="store_true", help="JSON with every rep's value")
    bench.add_argument("--quiet", action="store_true", help="no progress output")
    bench.set_defaults(func=cmd_bench)

    audit = sub.add_parser(
        "audit", help="check every task's event trail against the state machine (exit 1 if not)"
    )
    audit.add_argument("--since", help="only tasks created at or after this ISO 8601 time")
    audit.add_argument(
        "--max-shown", type=int, default=100, help="violations to print (default 100)"
    )
    audit.set_defaults(func=cmd_audit)

    stats = sub.add_parser("stats", help="print task counts per queue")
    stats.set_defaults(func=cmd_stats)

    embedded = sub.add_parser(
        "embedded", help="the local PostgreSQL in .taskqueue/ (start prints its URL)"
    )
    embedded.add_argument("action", choices=["start", "stop", "url"])
    embedded.set_defaults(func=cmd_embedded)

    schedules = sub.add_parser("schedules", help="recurring tasks: list, add, pause, resume, ...")
    schedules.add_argument("--handlers", help="modules whose task types schedules may fire")
    actions = schedules.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every schedule, by name")
    for action, text in (
        ("show", "one schedule as JSON: its next 5 fire times and its last 10 fires"),
        ("pause", "stop it firing"),
        ("resume", "fire again from the next slot after now"),
        ("trigger", "enqueue one task of it now"),
        ("delete", "remove it (the tasks it fired stay)"),
    ):
        actions.add_parser(action, help=text).add_argument("name")
    add = actions.add_parser("add", help="add a schedule and print it as JSON")
    add.add_argument("name")
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help="5 fields, 6 with leading seconds, or @hourly and the like")
    when.add_argument("--every", type=int, metavar="SECONDS", help="a fixed interval instead")
    add.add_argument("--type", required=True, help="the task type to enqueue")
    add.add_argument("--payload", default="{}", help="JSON payload of each task")
    add.add_argument("--timezone", default="UTC", help="IANA zone the cron expression is in")
    add.add_argument("--queue")
    add.add_argument("--priority", type=int)
    add.add_argument("--max-retries", type=int)
    add.add_argument("--timeout", type=float, help="each task's timeout in seconds")
    add.add_argument("--catch-up", choices=["none", "latest", "all"], default="latest")
    add.add_argument("--overlap", choices=["allow", "skip"], default="allow")
    schedules.set_defaults(func=cmd_schedules)

    from taskqueue.operate import add_commands

    add_commands(sub)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = {
        "database_url": "database_url",
        "queues": "queues",
        "concurrency": "concurrency",
        "prefetch": "prefetch",
        "handlers": "handlers",
        "shutdown_timeout": "shutdown_timeout",
        "lease_seconds": "lease_seconds",
        "host": "host",
        "port": "port",
        "metrics_port": "metrics_port",
    }
    found: dict[str, Any] = {}
    for attr, field in names.items():
        value = getattr(args, attr, None)
        if value is None:
            continue
        if field in ("queues", "handlers"):
            value = [part.strip() for part in value.split(",") if part.strip()]
        found[field] = value
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ours, psql_args = _split_psql(list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(ours)
    if psql_args is not None:
        args.psql_args = psql_args
    _configure_logging(args.verbose)
    # `--handlers myapp.tasks` finds modules in the current directory, as
    # `python -m` would (the console script's own directory is bin/).
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    json_logs = False
    try:
        settings = Settings.from_env(**_overrides(args))
        _configure_logging(args.verbose, settings)
        json_logs = settings.log_format == "json"
        if not settings.database_url and args.command not in _OWN_DATABASE:
            settings = _with_running_embedded(settings)
        metrics.configure(settings)
        result: int = args.func(args, settings)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # One line for people; the traceback with -v.
        if json_logs:  # every line of stderr stays a JSON object
            logger.error("taskqueue: error: %s", _one_line(exc, args), exc_info=args.verbose)
        else:
            if args.verbose:
                traceback.print_exc()
            print(f"taskqueue: error: {_one_line(exc, args)}", file=sys.stderr)
        expected = (ConfigError, TaskQueueError, EmbeddedPostgresError, ValueError)
        return 2 if isinstance(exc, expected) else 1
    return result


# Commands that start or find a database themselves, or need none.
_OWN_DATABASE = frozenset({"run", "embedded", "bench", "psql"})


def _with_running_embedded(settings: Settings) -> Settings:
    """Without DATABASE_URL, the embedded server `make run` keeps in
    .taskqueue/ when it is running: `taskqueue queues` beside `make run`
    just works. Never starts one."""
    if not (embedded_data_dir() / "postmaster.pid").exists():
        return settings
    try:
        server = embedded_server()
    except EmbeddedPostgresError:
        return settings
    port = server.running_port()
    if port is None:
        return settings
    server.port = port
    return msgspec.structs.replace(settings, database_url=server.dsn())


def _split_psql(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Everything after the `psql` command is psql's own (`-c 'SELECT 1'`)."""
    for index, word in enumerate(argv):
        if word.startswith("-"):
            continue
        if index > 0 and argv[index - 1] == "--database-url":
            continue
        if word == "psql":
            return argv[: index + 1], argv[index + 1 :]
        break
    return argv, None


def _one_line(exc: BaseException, args: argparse.Namespace) -> str:
    text = " ".join(str(exc).split())
    if not isinstance(exc, ConfigError | TaskQueueError | EmbeddedPostgresError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        if not args.verbose:
            text += " (-v shows the traceback)"
    # Whatever the message quotes, never the database password.
    for url in (
        args.database_url,
        os.environ.get("DATABASE_URL"),
        os.environ.get("TASKQUEUE_DATABASE_URL"),
    ):
        if url:
            text = text.replace(url, mask_password(url))
    return text


if __name__ == "__main__":
    sys.exit(main())
