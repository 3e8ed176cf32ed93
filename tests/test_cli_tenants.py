"""``taskqueue tenants`` (taskqueue/cli/tenants.py), run as an operator
would: list, show, set and remove a tenant's quota and rate limit on starts,
each change in the operator log as ``local``."""

from __future__ import annotations

import json

from taskqueue.client import TaskQueue
from taskqueue.models import NewTask
from tests.test_cli_operate import taskqueue


async def test_tenants_are_listed_shown_limited_and_unlimited_from_the_shell(
    database_url: str, tq: TaskQueue
) -> None:
    assert taskqueue(database_url, "tenants").stdout.strip() == (
        "no tenants with a quota or a rate limit"
    )
    limited = taskqueue(
        database_url, "tenants", "limit", "acme", "--max-queued", "5", "--rate", "100/60"
    )
    assert limited.returncode == 0, limited.stderr
    await tq.enqueue_many([NewTask(type="noop", tenant="acme") for _ in range(2)])
    shown = json.loads(taskqueue(database_url, "tenants", "show", "acme", "--json").stdout)
    assert shown == {
        "name": "acme",
        "max_queued": 5,
        "unfinished": 2,
        "rate_limit": {"limit": 100, "period_seconds": 60.0},
        "recent_starts": 0,
    }
    table = taskqueue(database_url, "tenants").stdout.splitlines()
    assert table[0].split() == ["tenant", "unfinished", "max", "queued", "rate", "recent", "starts"]
    assert table[1].split() == ["acme", "2", "5", "100/60s", "0"]
    # Leaving one out keeps it; none removes it.
    taskqueue(database_url, "tenants", "limit", "acme", "--rate", "none")
    listed = json.loads(taskqueue(database_url, "tenants", "--json").stdout)
    assert [(t["name"], t["max_queued"], t["rate_limit"]) for t in listed] == [("acme", 5, None)]
    for bad, says in (
        (("--rate", "lots"), "--rate"),
        (("--max-queued", "many"), "--max-queued"),
        (("--max-queued", "-1"), "max_queued"),
        ((), "give --max-queued, --rate or both"),
    ):
        refused = taskqueue(database_url, "tenants", "limit", "acme", *bad)
        assert refused.returncode == 2, refused
        assert refused.stderr.startswith("taskqueue: error: ") and says in refused.stderr
    refused = taskqueue(database_url, "tenants", "show", "bad/name")
    assert refused.returncode == 2 and "name" in refused.stderr
    log = json.loads(taskqueue(database_url, "actions", "--json").stdout)
    # Newest first; a quota and a rate are logged as changes of their own.
    assert [(a["action"], a["actor"], a["scope"]) for a in log] == [
        ("tenant_limits", "local", {"tenant": "acme", "rate_limit": None}),
        (
            "tenant_limits",
            "local",
            {"tenant": "acme", "rate_limit": {"limit": 100, "period_seconds": 60.0}},
        ),
        ("tenant_limits", "local", {"tenant": "acme", "max_queued": 5}),
    ]
