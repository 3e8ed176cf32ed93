"""``taskqueue`` command line: migrate, worker, enqueue, stats, and more.

``main`` reads the arguments and the settings, finds a database, runs one
command and turns its error into one line and an exit code. The commands live
by what they act on: ``servers`` (worker, api, run, bench), ``database``
(migrate, embedded, psql), ``operate`` (the queue's data: enqueue, stats,
queues, workers, failures, bulk, actions, tail, schedules, audit), ``tenants``
and ``workflows``; ``parser`` holds their arguments and ``output`` everything they print."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from taskqueue.cli.database import (
    cmd_embedded,
    cmd_migrate,
    cmd_psql,
    embedded_data_dir,
    embedded_server,
    with_running_embedded,
)
from taskqueue.cli.operate import cmd_audit, cmd_enqueue, cmd_schedules, cmd_stats
from taskqueue.cli.output import failed
from taskqueue.cli.parser import build_parser
from taskqueue.cli.servers import cmd_api, cmd_bench, cmd_run, cmd_worker, require_free_port
from taskqueue.config import Settings
from taskqueue.observability import metrics

# What ``taskqueue.cli`` offered when it was one module keeps working from here.
__all__ = [
    "build_parser",
    "cmd_api",
    "cmd_audit",
    "cmd_bench",
    "cmd_embedded",
    "cmd_enqueue",
    "cmd_migrate",
    "cmd_psql",
    "cmd_run",
    "cmd_schedules",
    "cmd_stats",
    "cmd_worker",
    "embedded_data_dir",
    "embedded_server",
    "main",
    "require_free_port",
]

# Commands that start or find a database themselves, or need none.
_OWN_DATABASE = frozenset({"run", "embedded", "bench", "psql"})


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
            settings = with_running_embedded(settings)
        metrics.configure(settings)
        result: int = args.func(args, settings)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return failed(exc, args, json_logs=json_logs)
    return result


def _configure_logging(verbose: bool, settings: Settings | None = None) -> None:
    """Console logging until the settings are read, then as they say
    (TASKQUEUE_LOG_FORMAT, TASKQUEUE_LOG_LEVEL; their secrets masked)."""
    from taskqueue.observability import logs

    if settings is None:
        logs.configure(verbose)
    else:
        logs.configure_from(settings, verbose)


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
