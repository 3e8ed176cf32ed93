"""Old import path of the operator's commands, which now live in
``taskqueue.cli.operate`` (their arguments in ``taskqueue.cli.parser``, the
table in ``taskqueue.cli.output``)."""

from taskqueue.cli.operate import (
    ACTOR,
    QUEUE_COLUMNS,
    WORKER_COLUMNS,
    cmd_actions,
    cmd_bulk,
    cmd_failures,
    cmd_queues,
    cmd_tail,
    cmd_workers,
)
from taskqueue.cli.output import table
from taskqueue.cli.parser import add_operator_commands as add_commands

__all__ = [
    "ACTOR",
    "QUEUE_COLUMNS",
    "WORKER_COLUMNS",
    "add_commands",
    "cmd_actions",
    "cmd_bulk",
    "cmd_failures",
    "cmd_queues",
    "cmd_tail",
    "cmd_workers",
    "table",
]
