"""The command line's arguments (taskqueue/cli/parser.py): every command is
there, in the order `taskqueue --help` lists them, and each runs something."""

from __future__ import annotations

import argparse

from taskqueue.cli import build_parser

COMMANDS = [
    "migrate",
    "worker",
    "enqueue",
    "api",
    "run",
    "psql",
    "bench",
    "audit",
    "history-chain",
    "verify-history",
    "stats",
    "embedded",
    "schedules",
    "queues",
    "tenants",
    "workers",
    "workflows",
    "partitions",
    "failures",
    "bulk",
    "actions",
    "tail",
]


def test_every_command_is_listed_and_runs_a_function() -> None:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert list(commands.choices) == COMMANDS
    for name, command in commands.choices.items():
        assert callable(command.get_default("func")), name


def test_limit_options_do_not_take_the_worker_settings_names() -> None:
    args = build_parser().parse_args(["queues", "limit", "mail", "--concurrency", "5"])
    assert (args.concurrency_limit, getattr(args, "concurrency", None)) == ("5", None)
