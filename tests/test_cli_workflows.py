"""``taskqueue workflows`` from the shell: the list with each workflow's
status, and one workflow with every task and what it waits for."""

from __future__ import annotations

import json

from taskqueue.client import TaskQueue
from taskqueue.models import NewTask
from taskqueue.workflows import chain
from tests.test_cli_operate import taskqueue


async def test_workflows_are_listed_and_shown_from_the_shell(
    database_url: str, tq: TaskQueue
) -> None:
    done = await tq.workflows.submit(
        chain(NewTask(type="noop"), NewTask(type="noop"), name="two-step")
    )
    answer = taskqueue(database_url, "workflows", "--json")
    assert answer.returncode == 0, answer.stderr
    listed = json.loads(answer.stdout)
    assert [(w["id"], w["name"], w["status"], w["total"]) for w in listed] == [
        (str(done.id), "two-step", "running", 2)
    ]
    table = taskqueue(database_url, "workflows", "list").stdout.splitlines()
    assert table[0].split()[:3] == ["id", "name", "status"] and "two-step" in table[1]
    shown = taskqueue(database_url, "workflows", "show", str(done.id))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "running" in lines[0]
    assert lines[3].split()[0] == "1" and "waiting" in lines[3] and lines[3].split()[5] == "0"
    as_json = json.loads(
        taskqueue(database_url, "workflows", "--json", "show", str(done.id)).stdout
    )
    assert [t["depends_on"] for t in as_json["tasks"]] == [[], ["0"]]
    missing = taskqueue(database_url, "workflows", "show", "nope")
    assert missing.returncode == 2 and "not a workflow id" in missing.stderr
