"""The operator's commands: ``taskqueue queues | workers | failures | bulk |
actions | tail``. Each prints a table (``--json`` for machines) and acts as
``local`` in the operator log, like the API without tokens."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from taskqueue.config import ConfigError, Settings

if TYPE_CHECKING:
    from taskqueue.client import TaskQueue

ACTOR = "local"
QUEUE_COLUMNS = (
    "queue",
    "state",
    "due",
    "scheduled",
    "running",
    "failed",
    "oldest due",
    "limit",
    "rate",
    "workers",
)
WORKER_COLUMNS = (
    "worker",
    "state",
    "queues",
    "in flight",
    "concurrency",
    "last heartbeat",
    "started",
)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Rows as left-aligned columns under ``header``."""
    lines = [tuple(header)] + [tuple("" if cell is None else str(cell) for cell in r) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _emit_json(value: object) -> None:
    print(msgspec.json.format(msgspec.json.encode(value)).decode())


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


async def _connected(settings: Settings) -> TaskQueue:
    from taskqueue.client import TaskQueue

    return await TaskQueue.connect(settings.require_database_url(), registry=None)


def cmd_queues(args: argparse.Namespace, settings: Settings) -> int:
    """List queues, or pause, resume or limit one."""

    async def main() -> None:
        async with await _connected(settings) as tq:
            if args.action == "pause":
                queues = [await tq.pause(args.name, actor=ACTOR)]
            elif args.action == "resume":
                queues = [await tq.resume(args.name, actor=ACTOR)]
            elif args.action == "limit":
                changes: dict[str, Any] = {}
                if args.concurrency_limit is not None:
                    changes["concurrency"] = _limit(args.concurrency_limit, "--concurrency")
                if args.rate_limit is not None:
                    changes["rate"] = _rate(args.rate_limit)
                if not changes:
                    raise ConfigError("limit: give --concurrency, --rate or both")
                queues = [await tq.set_limits(args.name, actor=ACTOR, **changes)]
            else:
                queues = await tq.queues()
            if args.json:
                _emit_json(queues)
                return
            print(
                table(
                    QUEUE_COLUMNS,
                    [
                        (
                            q.name,
                            "paused" if q.paused else "active",
                            q.due,
                            q.scheduled,
                            q.running,
                            q.failed,
                            f"{q.oldest_due_age_seconds:.1f}s" if q.due else "",
                            q.concurrency_limit,
                            None
                            if q.rate_limit is None
                            else f"{q.rate_limit.limit}/{q.rate_limit.period_seconds:g}s",
                            q.workers,
                        )
                        for q in queues
                    ],
                )
                if queues
                else "no queues"
            )

    asyncio.run(main())
    return 0


def _limit(text: str, option: str) -> int | None:
    if text == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{option}: a whole number, or none") from None


def _rate(text: str) -> tuple[int, float] | None:
    if text == "none":
        return None
    count, _, seconds = text.partition("/")
    try:
        return int(count), float(seconds or "1")
    except ValueError:
        raise ConfigError("--rate: N/SECONDS (100/60 is 100 a minute), or none") from None


def cmd_workers(args: argparse.Namespace, settings: Settings) -> int:
    async def main() -> None:
        async with await _connected(settings) as tq:
            workers = await tq.workers()
        if args.json:
            _emit_json(workers)
            return
        print(
            table(
                WORKER_COLUMNS,
                [
                    (
                        w.id,
                        w.state,
                        ",".join(w.queues),
                        w.in_flight,
                        w.concurrency,
                        _when(w.last_heartbeat_at),
                        _when(w.started_at),
                    )
                    for w in workers
                ],
            )
            if workers
            else "no workers"
        )

    asyncio.run(main())
    return 0


def cmd_failures(args: argparse.Namespace, settings: Settings) -> int:
    since = _zoned(args.since, "--since")

    async def main() -> None:
        async with await _connected(settings) as tq:
            groups = await tq.failures(queue=args.queue, type=args.type, since=since)
        if args.json:
            _emit_json(groups)
            return
        print(
            table(
                ("count", "queue", "type", "error", "last failed", "sample task"),
                [
                    (g.count, g.queue, g.type, g.error, _when(g.last_failed_at), g.sample_task_id)
                    for g in groups
                ],
            )
            if groups
            else "no failed tasks"
        )

    asyncio.run(main())
    return 0


def cmd_bulk(args: argparse.Namespace, settings: Settings) -> int:
    """Retry, cancel or delete tasks by id or by filter, chunk after chunk."""
    from taskqueue.models import Status, TaskFilter

    ids: list[uuid.UUID] | None = None
    where: TaskFilter | None = None
    if args.id:
        try:
            ids = [uuid.UUID(text) for text in args.id]
        except ValueError:
            raise ConfigError("--id: a task id") from None
    filtering = (args.status, args.queue, args.type, args.error, args.created_before)
    if any(value is not None for value in filtering):
        try:
            status = None if args.status is None else Status(args.status)
        except ValueError:
            raise ConfigError(f"--status: one of {', '.join(s.value for s in Status)}") from None
        where = TaskFilter(
            status=status,
            queue=args.queue,
            type=args.type,
            error=args.error,
            created_before=_zoned(args.created_before, "--created-before"),
        )
    if (ids is None) == (where is None):
        raise ConfigError("give --id (repeatable) or a filter (--status, --queue, ...), not both")

    async def main() -> tuple[int, int]:
        matched = changed = 0
        async with await _connected(settings) as tq:
            act = {"retry": tq.retry_many, "cancel": tq.cancel_many, "delete": tq.delete_many}
            after = None
            while True:
                result = await act[args.action](ids, where=where, after=after, actor=ACTOR)
                matched += result.matched
                changed += result.changed
                if result.next is None:
                    return matched, changed
                after = result.next

    matched, changed = asyncio.run(main())
    print(f"{args.action}: {matched} matched, {changed} changed")
    return 0


def cmd_actions(args: argparse.Namespace, settings: Settings) -> int:
    async def main() -> None:
        async with await _connected(settings) as tq:
            actions = await tq.actions(limit=args.limit)
        if args.json:
            _emit_json(actions)
            return
        print(
            table(
                ("when", "actor", "action", "scope", "result"),
                [
                    (
                        _when(a.at),
                        a.actor,
                        a.action,
                        msgspec.json.encode(a.scope).decode(),
                        "" if a.result is None else msgspec.json.encode(a.result).decode(),
                    )
                    for a in actions
                ],
            )
            if actions
            else "no operator actions yet"
        )

    asyncio.run(main())
    return 0


def cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    """Follow task events as they happen, until interrupted."""
    task_id = None
    if args.task_id:
        try:
            task_id = uuid.UUID(args.task_id)
        except ValueError:
            raise ConfigError("--task-id: a task id") from None

    async def main() -> None:
        async with await _connected(settings) as tq:
            events = tq.events(queue=args.queue, type=args.type, task_id=task_id, after=args.after)
            async for event in events:
                if args.json:
                    print(msgspec.json.encode(event).decode(), flush=True)
                    continue
                print(
                    f"{event.at:%H:%M:%S.%f}"[:-3],
                    event.event_type.removeprefix("task_").ljust(15),
                    event.task_id,
                    event.queue or "-",
                    event.type or "-",
                    f"attempt {event.attempt}",
                    event.worker_id or "",
                    flush=True,
                )

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


def _zoned(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option}: not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        raise ConfigError(f"{option}: give a time zone (e.g. 2026-01-31T12:00:00Z)")
    return value


def add_commands(sub: Any) -> None:
    """The operator's subcommands, on the CLI's subparsers."""
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
    limit.add_argument(
        "--rate",
        dest="rate_limit",
        metavar="N/SECONDS|none",
        help="task starts per rolling period, e.g. 100/60",
    )
    queues.set_defaults(func=cmd_queues, action=None)

    workers = sub.add_parser("workers", help="the worker registry (running, stopped, lost)")
    workers.add_argument("--json", action="store_true")
    workers.set_defaults(func=cmd_workers)

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
