"""The ``taskqueue`` command line's arguments: every command, its options and
their help, in the order ``taskqueue --help`` lists them."""

from __future__ import annotations

import argparse
from typing import Any

from taskqueue.cli.database import cmd_embedded, cmd_migrate, cmd_psql
from taskqueue.cli.history import cmd_history_chain, cmd_verify_history
from taskqueue.cli.operate import (
    cmd_actions,
    cmd_audit,
    cmd_bulk,
    cmd_enqueue,
    cmd_failures,
    cmd_partitions,
    cmd_queues,
    cmd_schedules,
    cmd_stats,
    cmd_tail,
    cmd_workers,
)
from taskqueue.cli.servers import cmd_api, cmd_bench, cmd_run, cmd_worker
from taskqueue.cli.tenants import cmd_tenants
from taskqueue.cli.workflows import cmd_workflows


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
    bench.add_argument(
        "--phases",
        default="single,bulk,rest,drain,limited,pickup,unknown,depth",
        help="comma-separated; history and pressure run only when named; pooling"
        " (a worker fleet through PgBouncer against direct) only on its own",
    )
    bench.add_argument("--pooling-workers", type=int, default=16, help="worker processes")
    bench.add_argument(
        "--pooling-soak-seconds", type=float, default=0.0, help="soak through PgBouncer instead"
    )
    bench.add_argument("--pooling-soak-rate", type=int, default=200, help="tasks/s in the soak")
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
    bench.add_argument(
        "--history-rows",
        type=int,
        default=1_000_000,
        help="history phase: finished tasks kept while draining (the issue's figure: 10,000,000)",
    )
    bench.add_argument(
        "--pressure-rate",
        default="1000",
        help="pressure phase: tasks/s offered, or N%% of a clean drain measured first (e.g. 30%%)",
    )
    bench.add_argument("--pressure-clean", type=float, default=60.0, help="seconds, clean stage")
    bench.add_argument(
        "--pressure-pinned", type=float, default=180.0, help="seconds with the horizon held"
    )
    bench.add_argument(
        "--pressure-long", action="store_true", help="hold the horizon 30 minutes instead"
    )
    bench.add_argument(
        "--pressure-recovery", type=float, default=60.0, help="seconds after the release"
    )
    bench.add_argument("--pressure-window", type=float, default=20.0, help="seconds per window")
    bench.add_argument("--pressure-workers", type=int, default=2, help="worker processes")
    bench.add_argument(
        "--pressure-concurrency", type=int, default=10, help="TASKQUEUE_CONCURRENCY of each"
    )
    bench.add_argument(
        "--workflow-width", type=int, default=500, help="workflow phase: tasks per layer (of 20)"
    )
    bench.add_argument(
        "--crash-runs", type=int, default=20, help="crash phase: graphs drained with kill -9"
    )
    for flag, kind, default, text in (
        ("fairness-backlog", int, 100_000, "fairness: tenant a's backlog"),
        ("fairness-tenants", int, 9, "fairness: other tenants"),
        ("fairness-rate", float, 10.0, "fairness: tasks/s of each other tenant"),
        ("fairness-seconds", float, 5.0, "fairness: seconds they enqueue"),
        ("sequence-keys", int, 1000, "sequences: keys"),
        ("sequence-length", int, 20, "sequences: tasks per key"),
        ("sequence-workers", int, 4, "sequences: worker processes"),
        ("sequence-kills", int, 2, "sequences: workers killed (SIGKILL) on the way"),
        ("keys-n", int, 20_000, "keys: tasks drained (a tenth for the peak)"),
        ("keys-distinct", int, 1000, "keys: distinct keys of the drain"),
        ("keys-workers", int, 3, "keys: worker processes of the peak stage"),
        ("keys-concurrency", int, 20, "keys: TASKQUEUE_CONCURRENCY of each"),
    ):
        bench.add_argument(f"--{flag}", type=kind, default=default, help=text)
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

    chain = sub.add_parser(
        "history-chain",
        help="stop or restart sealing the history in its hash chain (schema owner; on by default)",
    )
    chain.add_argument("action", choices=("on", "off", "status"))
    chain.set_defaults(func=cmd_history_chain)

    verify = sub.add_parser(
        "verify-history",
        help="walk the history's hash chain; name every task whose trail, payload or result"
        " was changed, moved or removed (exit 1 if any)",
    )
    verify.add_argument("--since", help="only links written at or after this ISO 8601 time")
    verify.add_argument("--max-shown", type=int, default=100, help="problems to print")
    verify.add_argument(
        "--heads", action="store_true", help="also print each lane's head (an external anchor)"
    )
    verify.add_argument(
        "--anchor", help="a file of heads kept outside the database (its last line is checked)"
    )
    verify.set_defaults(func=cmd_verify_history)

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

    add_operator_commands(sub)
    return parser


def add_operator_commands(sub: Any) -> None:
    """The operator's commands, on the subparsers ``build_parser`` made."""
    queues = sub.add_parser("queues", help="queues: list, or pause / resume / limit one")
    queues.add_argument("--json", action="store_true", help="JSON instead of a table")
    what = queues.add_subparsers(dest="action")
    for action, text in (("pause", "no worker claims its tasks"), ("resume", "claim again")):
        what.add_parser(action, help=text).add_argument("name")
    limit = what.add_parser("limit", help="set (or, with none, remove) a queue's limits")
    limit.add_argument("name")
    # Not dest="concurrency": that name is the worker's setting (cli._overrides).
    limit.add_argument(
        "--concurrency",
        dest="concurrency_limit",
        metavar="N|none",
        help="tasks running at once, at most",
    )
    _rate_option(limit, "task starts per rolling period, e.g. 100/60")
    queues.set_defaults(func=cmd_queues, action=None)

    tenants = sub.add_parser(
        "tenants", help="tenants' quotas and rate limits: list, show or limit one"
    )
    tenants.add_argument("--json", action="store_true", help="JSON instead of a table")
    tenants.add_argument("--limit", type=int, default=None, help="how many to list")
    told = tenants.add_subparsers(dest="action")
    shown = told.add_parser("show", help="one tenant's limits and use")
    shown.add_argument("name")
    capped = told.add_parser("limit", help="set (or, with none, remove) a tenant's limits")
    capped.add_argument("name")
    for one in (shown, capped):  # `tenants show NAME --json` as well as `tenants --json show NAME`
        one.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    capped.add_argument(
        "--max-queued", metavar="N|none", help="unfinished tasks (waiting, queued, running)"
    )
    _rate_option(capped, "task starts per rolling period across every queue, e.g. 100/60")
    tenants.set_defaults(func=cmd_tenants, action=None)

    workers = sub.add_parser("workers", help="the worker registry (running, stopped, lost)")
    workers.add_argument("--json", action="store_true")
    workers.set_defaults(func=cmd_workers)

    workflows = sub.add_parser("workflows", help="workflows: list, or show one with its tasks")
    workflows.add_argument("--json", action="store_true")
    workflows.add_argument("--limit", type=int, default=50, help="how many to list")
    shown = workflows.add_subparsers(dest="action")
    shown.add_parser("list", help="newest first, with their status")
    shown.add_parser("show", help="one workflow: every task and what it waits for").add_argument(
        "id"
    )
    workflows.set_defaults(func=cmd_workflows, action=None)

    partitions = sub.add_parser(
        "partitions", help="the history's daily partitions and its default partition's rows"
    )
    partitions.add_argument("--json", action="store_true")
    partitions.set_defaults(func=cmd_partitions)

    failures = sub.add_parser("failures", help="failed tasks grouped by queue, type and error")
    failures.add_argument("--queue")
    failures.add_argument("--type")
    failures.add_argument("--since", help="failed at or after this ISO 8601 time")
    failures.add_argument("--json", action="store_true")
    failures.set_defaults(func=cmd_failures)

    bulk = sub.add_parser("bulk", help="retry, cancel or delete many tasks, by id or by filter")
    bulk.add_argument("action", choices=["retry", "cancel", "delete"])
    bulk.add_argument("--id", action="append", help="a task id (repeatable)")
    bulk.add_argument("--status")
    bulk.add_argument("--queue")
    bulk.add_argument("--type")
    bulk.add_argument("--error", help="a failure group's error, as `taskqueue failures` shows it")
    bulk.add_argument("--created-before", help="ISO 8601 time with a zone")
    bulk.set_defaults(func=cmd_bulk)

    actions = sub.add_parser("actions", help="the operator log, newest first")
    actions.add_argument("--limit", type=int, default=50)
    actions.add_argument("--json", action="store_true")
    actions.set_defaults(func=cmd_actions)

    tail = sub.add_parser("tail", help="follow task events as they happen (Ctrl-C stops)")
    tail.add_argument("--queue")
    tail.add_argument("--type")
    tail.add_argument("--task-id")
    tail.add_argument("--after", type=int, help="start after this event id (default: now)")
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.set_defaults(func=cmd_tail)


def _rate_option(parser: Any, text: str) -> None:
    """``--rate N/SECONDS|none`` of a ``limit`` command (operate.limit_changes reads it)."""
    parser.add_argument("--rate", dest="rate_limit", metavar="N/SECONDS|none", help=text)
