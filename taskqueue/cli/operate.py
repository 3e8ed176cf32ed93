"""The operator's commands, which act on a queue's data through the client:
``taskqueue enqueue | stats | queues | workers | partitions | failures | bulk |
actions | tail | schedules | audit``. Tables for people (``--json`` for machines); a
change is made as ``local`` in the operator log, like the API without tokens."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from taskqueue import db
from taskqueue.cli.output import emit_json, json_line, table, when, with_client, zoned
from taskqueue.config import ConfigError, Settings
from taskqueue.text import escape_controls

if TYPE_CHECKING:
    from taskqueue.client import TaskQueue
    from taskqueue.models import QueueInfo, TaskFilter

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
PARTITION_COLUMNS = ("partition", "from (UTC)", "until (UTC)", "rows")
SCHEDULE_COLUMNS = (
    "name",
    "when",
    "timezone",
    "type",
    "queue",
    "state",
    "source",
    "next run (UTC)",
)


def cmd_enqueue(args: argparse.Namespace, settings: Settings) -> int:
    payload = json.loads(args.payload)

    async def enqueue(tq: TaskQueue) -> None:
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
        print(json_line(task))

    with_client(settings, enqueue, handlers=True)
    return 0


def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    emit_json(with_client(settings, lambda tq: tq.stats()))
    return 0


def cmd_queues(args: argparse.Namespace, settings: Settings) -> int:
    """List queues, or pause, resume or limit one."""

    async def act(tq: TaskQueue) -> Sequence[QueueInfo]:
        if args.action == "pause":
            return [await tq.pause(args.name, actor=ACTOR)]
        if args.action == "resume":
            return [await tq.resume(args.name, actor=ACTOR)]
        if args.action == "limit":
            return [await tq.set_limits(args.name, actor=ACTOR, **_limits(args))]
        return await tq.queues()

    queues = with_client(settings, act)
    if args.json:
        emit_json(queues)
        return 0
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
    return 0


def _limits(args: argparse.Namespace) -> dict[str, Any]:
    return limit_changes(
        {
            "concurrency": ("--concurrency", args.concurrency_limit),
            "rate": ("--rate", args.rate_limit),
        }
    )


def limit_changes(given: dict[str, tuple[str, str | None]]) -> dict[str, Any]:
    """The limits a ``limit`` command was given, by keyword: ``given`` maps
    each keyword to (its option, the text given or None). ``none`` removes
    a limit; ``--rate`` takes N/SECONDS. At least one must be given."""
    changes: dict[str, Any] = {}
    for keyword, (option, text) in given.items():
        if text is not None:
            changes[keyword] = parse_rate(text) if option == "--rate" else parse_limit(text, option)
    if not changes:
        options = ", ".join(option for option, _ in given.values())
        raise ConfigError(f"limit: give {options} or both")
    return changes


def parse_limit(text: str, option: str) -> int | None:
    if text == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{option}: a whole number, or none") from None


def parse_rate(text: str) -> tuple[int, float] | None:
    if text == "none":
        return None
    count, _, seconds = text.partition("/")
    try:
        return int(count), float(seconds or "1")
    except ValueError:
        raise ConfigError("--rate: N/SECONDS (100/60 is 100 a minute), or none") from None


def cmd_workers(args: argparse.Namespace, settings: Settings) -> int:
    workers = with_client(settings, lambda tq: tq.workers())
    if args.json:
        emit_json(workers)
        return 0
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
                    when(w.last_heartbeat_at),
                    when(w.started_at),
                )
                for w in workers
            ],
        )
        if workers
        else "no workers"
    )
    return 0


def cmd_partitions(args: argparse.Namespace, settings: Settings) -> int:
    """The history's partitions: one per UTC day with its estimated rows, and
    the default partition with its exact count (0 unless maintenance lags)."""
    partitions = with_client(settings, lambda tq: tq.views.event_partitions())
    if args.json:
        emit_json([{**msgspec.structs.asdict(p), "default": p.is_default} for p in partitions])
        return 0
    rows = [
        (
            p.name,
            "default" if p.is_default else when(p.starts),
            "" if p.is_default else when(p.ends),
            "?" if p.rows is None else (f"{p.rows} (exact)" if p.is_default else f"~{p.rows}"),
        )
        for p in partitions
    ]
    print(table(PARTITION_COLUMNS, rows) if rows else "task_events is not partitioned")
    return 0


def cmd_failures(args: argparse.Namespace, settings: Settings) -> int:
    since = zoned(args.since, "--since")
    groups = with_client(
        settings, lambda tq: tq.failures(queue=args.queue, type=args.type, since=since)
    )
    if args.json:
        emit_json(groups)
        return 0
    print(
        table(
            ("count", "queue", "type", "error", "last failed", "sample task"),
            [
                (g.count, g.queue, g.type, g.error, when(g.last_failed_at), g.sample_task_id)
                for g in groups
            ],
        )
        if groups
        else "no failed tasks"
    )
    return 0


def cmd_bulk(args: argparse.Namespace, settings: Settings) -> int:
    """Retry, cancel or delete tasks by id or by filter, chunk after chunk."""
    ids, where = _bulk_target(args)

    async def chunks(tq: TaskQueue) -> tuple[int, int]:
        matched = changed = 0
        act = {"retry": tq.retry_many, "cancel": tq.cancel_many, "delete": tq.delete_many}
        after = None
        while True:
            result = await act[args.action](ids, where=where, after=after, actor=ACTOR)
            matched += result.matched
            changed += result.changed
            if result.next is None:
                return matched, changed
            after = result.next

    matched, changed = with_client(settings, chunks)
    print(f"{args.action}: {matched} matched, {changed} changed")
    return 0


def _bulk_target(args: argparse.Namespace) -> tuple[list[uuid.UUID] | None, TaskFilter | None]:
    """The tasks `bulk` acts on: by id, or by filter, never both."""
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
            created_before=zoned(args.created_before, "--created-before"),
        )
    if (ids is None) == (where is None):
        raise ConfigError("give --id (repeatable) or a filter (--status, --queue, ...), not both")
    return ids, where


def cmd_actions(args: argparse.Namespace, settings: Settings) -> int:
    actions = with_client(settings, lambda tq: tq.actions(limit=args.limit))
    if args.json:
        emit_json(actions)
        return 0
    print(
        table(
            ("when", "actor", "action", "scope", "result"),
            [
                (
                    when(a.at),
                    a.actor,
                    a.action,
                    json_line(a.scope),
                    "" if a.result is None else json_line(a.result),
                )
                for a in actions
            ],
        )
        if actions
        else "no operator actions yet"
    )
    return 0


def cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    """Follow task events as they happen, until interrupted."""
    task_id = None
    if args.task_id:
        try:
            task_id = uuid.UUID(args.task_id)
        except ValueError:
            raise ConfigError("--task-id: a task id") from None

    async def follow(tq: TaskQueue) -> None:
        events = tq.events(queue=args.queue, type=args.type, task_id=task_id, after=args.after)
        async for event in events:
            if args.json:
                print(json_line(event), flush=True)
                continue
            print(
                f"{event.at:%H:%M:%S.%f}"[:-3],
                event.event_type.removeprefix("task_").ljust(15),
                event.task_id,
                escape_controls(event.queue or "-"),
                escape_controls(event.type or "-"),
                f"attempt {event.attempt}",
                escape_controls(event.worker_id or ""),
                flush=True,
            )

    with contextlib.suppress(KeyboardInterrupt):
        with_client(settings, follow)
    return 0


def cmd_schedules(args: argparse.Namespace, settings: Settings) -> int:
    """List, add, pause, resume, trigger, show and delete recurring tasks."""

    async def act(tq: TaskQueue) -> None:
        if args.action == "list":
            page = await tq.list_schedules(limit=1000)
            rows = list(page)
            while len(page) == 1000:
                page = await tq.list_schedules(after=page[-1].name, limit=1000)
                rows.extend(page)
            print(_schedule_table(rows) if rows else "no schedules")
        elif args.action == "show":
            emit_json(await tq.schedule_details(args.name))
        elif args.action == "add":
            try:
                payload = json.loads(args.payload)
            except ValueError as exc:
                raise ConfigError(f"payload: not JSON: {exc}") from None
            emit_json(
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
            emit_json(await tq.pause_schedule(args.name))
        elif args.action == "resume":
            emit_json(await tq.resume_schedule(args.name))
        elif args.action == "trigger":
            emit_json(await tq.trigger_schedule(args.name))
        else:
            await tq.delete_schedule(args.name)
            print(f"deleted schedule {args.name!r} (the tasks it fired stay)")

    with_client(settings, act, handlers=True)
    return 0


def _schedule_table(rows: Sequence[Any]) -> str:
    return table(
        SCHEDULE_COLUMNS,
        [
            (
                s.name,
                s.cron if s.cron is not None else f"every {s.every_seconds}s",
                s.timezone,
                s.type,
                s.queue,
                "paused" if s.paused else "active",
                s.source,
                when(s.next_run_at),
            )
            for s in rows
        ],
    )


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    """Check every task's event trail against the state machine; exit 1 on
    any violation."""
    from taskqueue.audit import audit

    since = zoned(args.since, "--since") if args.since else None

    async def main() -> int:
        # One connection is all it uses: it reads every trail in one transaction.
        pool = await db.create_pool(settings.require_database_url(), max_size=1)
        try:
            report = await audit(pool, since)
        finally:
            await pool.close()
        shown = report.violations[: args.max_shown]
        for violation in shown:
            print(f"task {violation.task_id}: {escape_controls(violation.problem)}")
        if len(report.violations) > len(shown):
            print(f"… and {len(report.violations) - len(shown)} more")
        bad = len({v.task_id for v in report.violations})
        print(
            f"audit: {report.tasks} tasks, {report.events} events checked; "
            + (f"{len(report.violations)} violation(s) in {bad} task(s)" if bad else "all sound")
        )
        return 1 if bad else 0

    return asyncio.run(main())
