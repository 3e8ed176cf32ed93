"""``taskqueue workflows``: the workflows, newest first, and one workflow
with every task, its status and what it waits for."""

from __future__ import annotations

import argparse
import uuid

import msgspec

from taskqueue.cli.output import emit_json, table, when, with_client
from taskqueue.config import ConfigError, Settings
from taskqueue.workflows import summary_status

LIST_COLUMNS = ("id", "name", "status", "tasks", "unfinished", "failed", "created")
SHOW_COLUMNS = ("ref", "id", "type", "status", "attempts", "depends on", "finished")


def cmd_workflows(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "show":
        return _show(args, settings)
    found = with_client(settings, lambda tq: tq.workflows.list(limit=args.limit))
    if args.json:
        emit_json([{**msgspec.structs.asdict(w), "status": summary_status(w)} for w in found])
        return 0
    rows = [
        (w.id, w.name, summary_status(w), w.total, w.unfinished, w.failed, when(w.created_at))
        for w in found
    ]
    print(table(LIST_COLUMNS, rows) if rows else "no workflows")
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    try:
        workflow_id = uuid.UUID(args.id)
    except ValueError:
        raise ConfigError(f"not a workflow id: {args.id!r}") from None
    wf = with_client(settings, lambda tq: tq.workflows.get(workflow_id))
    if args.json:
        emit_json(
            {
                "id": wf.id,
                "name": wf.name,
                "status": wf.status,
                "created_at": wf.created_at,
                "tasks": [
                    {
                        **msgspec.structs.asdict(t),
                        "depends_on": [wf.refs.get(p, str(p)) for p in t.depends_on],
                    }
                    for t in wf.tasks
                ],
            }
        )
        return 0
    print(f"workflow {wf.id} {wf.name!r}: {wf.status}")
    rows = [
        (
            t.ref or "",
            t.id,
            t.type,
            t.status,
            t.attempts,
            ",".join(wf.refs.get(p, str(p)) for p in t.depends_on),
            when(t.completed_at),
        )
        for t in wf.tasks
    ]
    print(table(SHOW_COLUMNS, rows))
    return 0
