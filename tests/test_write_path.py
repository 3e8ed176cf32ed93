"""The write path (taskqueue/store/write_path.py) on a database set up the
operator's way (deploy/postgres/roles.sql, `taskqueue migrate` as the
migrator, roles.sql again): every forgery of issue 21 is refused to both
taskqueue_api and taskqueue_worker, the functions cannot be turned against
the rules they replace, and the product still works as those roles."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import psycopg
import pytest

from taskqueue import db, store
from taskqueue.audit import audit
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask, Outcome, OutcomeKind
from taskqueue.store import _sql, write_path
from taskqueue.sync import TaskQueue as SyncTaskQueue
from taskqueue.workflows import chain
from tests.helpers import event_types
from tests.test_deploy_roles import DENIED, ROLES, Dsns, set_up


@pytest.fixture
def dsns(empty_database_url: str) -> Dsns:
    return set_up(empty_database_url, {role: secrets.token_hex(16) for role in ROLES})[0]


async def _pool(dsn: str) -> asyncpg.Pool:
    return await db.create_pool(dsn, min_size=1, max_size=2)


@pytest.fixture
async def admin(dsns: Dsns) -> AsyncIterator[asyncpg.Pool]:
    pool = await _pool(dsns.admin)
    yield pool
    await pool.close()


@pytest.fixture
async def api_pool(dsns: Dsns) -> AsyncIterator[asyncpg.Pool]:
    pool = await _pool(dsns.api)
    yield pool
    await pool.close()


@pytest.fixture
async def worker_pool(dsns: Dsns) -> AsyncIterator[asyncpg.Pool]:
    pool = await _pool(dsns.worker)
    yield pool
    await pool.close()


@pytest.fixture
async def finished_and_queued(
    api_pool: asyncpg.Pool, worker_pool: asyncpg.Pool
) -> tuple[uuid.UUID, uuid.UUID]:
    """A task that succeeded (through the product) and one still queued."""
    tq = TaskQueue(api_pool)
    done = await tq.enqueue("noop", priority=10)
    queued = await tq.enqueue("noop", queue="other")
    (claimed,) = await store.claim_tasks(worker_pool, ["default"], 1, "w1", 30, types=["noop"])
    outcome = Outcome(task_id=claimed.id, attempt=1, kind=OutcomeKind.SUCCEEDED, result={"x": 1})
    assert await store.complete_tasks(worker_pool, [outcome], "w1") == {done.id}
    return done.id, queued.id


def forgeries(done: uuid.UUID, queued: uuid.UUID) -> list[str]:
    """Issue 21's forgeries, as the statements a hostile role would send."""
    return [
        # a task_started event for any task
        "INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt)"
        f" VALUES ('{queued}', 'task_started', 'running', 1)",
        # a queued task cancelled with no event
        f"UPDATE taskqueue.tasks SET status = 'cancelled' WHERE id = '{queued}'",
        f"UPDATE taskqueue.tasks SET attempts = 7 WHERE id = '{queued}'",
        # finished tasks deleted with no task_deleted event
        "DELETE FROM taskqueue.tasks WHERE status = 'succeeded'",
        # a queued task marked succeeded with a result
        "UPDATE taskqueue.tasks SET status = 'succeeded', result = '{\"forged\": true}'"
        f" WHERE id = '{queued}'",
        # events for tasks that do not exist
        "INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt)"
        f" VALUES ('{uuid.uuid4()}', 'task_succeeded', 'succeeded', 1)",
        # history edited or removed
        "UPDATE taskqueue.task_events SET error = 'rewritten'",
        "UPDATE taskqueue.task_events SET at = at - interval '30 days'",
        "DELETE FROM taskqueue.task_events",
        "TRUNCATE taskqueue.task_events",
        "TRUNCATE taskqueue.tasks",
        f"UPDATE taskqueue.tasks SET payload = '{{}}' WHERE id = '{done}'",
        # the helpers the write path calls, called directly
        f"SELECT * FROM taskqueue.settle_children(ARRAY['{queued}']::uuid[], ARRAY[false], 'x')",
        f"SELECT * FROM taskqueue.lock_parents(ARRAY['{queued}']::uuid[], ARRAY[1])",
    ]


@pytest.mark.parametrize("role", ["api", "worker"])
async def test_every_forgery_is_refused_to_the_roles_the_product_runs_as(
    role: str,
    admin: asyncpg.Pool,
    api_pool: asyncpg.Pool,
    worker_pool: asyncpg.Pool,
    finished_and_queued: tuple[uuid.UUID, uuid.UUID],
) -> None:
    pool = api_pool if role == "api" else worker_pool
    done, queued = finished_and_queued
    before_tasks = await admin.fetch("SELECT * FROM taskqueue.tasks ORDER BY id")
    before_events = await admin.fetch("SELECT * FROM taskqueue.task_events ORDER BY id")
    for statement in forgeries(done, queued):
        with pytest.raises(DENIED):
            await pool.execute(statement)
    # COPY straight into the tasks or their history, past the write path.
    async with pool.acquire() as conn:
        for table, columns, record in (
            ("tasks", ["id", "type"], (uuid.uuid4(), "noop")),
            ("task_events", ["task_id", "event_type"], (queued, "task_started")),
        ):
            with pytest.raises(DENIED):
                await conn.copy_records_to_table(
                    table, schema_name="taskqueue", columns=columns, records=[record]
                )
    assert await admin.fetch("SELECT * FROM taskqueue.tasks ORDER BY id") == before_tasks
    assert await admin.fetch("SELECT * FROM taskqueue.task_events ORDER BY id") == before_events


async def test_each_role_runs_only_its_own_write_path_functions(
    admin: asyncpg.Pool,
    api_pool: asyncpg.Pool,
    worker_pool: asyncpg.Pool,
    finished_and_queued: tuple[uuid.UUID, uuid.UUID],
) -> None:
    done, queued = finished_and_queued
    granted = {
        r["name"]: set(r["roles"])
        for r in await admin.fetch("SELECT name, roles FROM taskqueue.write_statements")
    }
    assert granted == {name: set(_sql.write_path_roles(name) or ()) for name in granted}
    assert set(granted) == set(_sql.write_path_statements())
    # The API may not run a worker's statement: complete a task it does not
    # hold, claim, renew, rescue, fire a schedule.
    outcome = Outcome(task_id=queued, attempt=0, kind=OutcomeKind.SUCCEEDED, result={"f": 1})
    with pytest.raises(DENIED, match="write_complete_tasks"):
        await store.complete_tasks(api_pool, [outcome], "w1")
    with pytest.raises(DENIED, match="write_claim_tasks"):
        await store.claim_tasks(api_pool, ["other"], 1, "api", 30, types=["noop"])
    with pytest.raises(DENIED, match="write_rescue_expired"):
        await store.rescue_expired(api_pool, "api")
    # A worker may not enqueue, cancel, retry or delete.
    with pytest.raises(DENIED, match="write_enqueue_task"):
        await TaskQueue(worker_pool).enqueue("noop")
    with pytest.raises(DENIED, match="write_cancel_task"):
        await store.cancel_task(worker_pool, queued)
    with pytest.raises(DENIED, match="write_delete_tasks"):
        await TaskQueue(worker_pool).delete_many([done])
    # And a worker's completion is fenced inside its function: a task it
    # does not hold (queued, never claimed) is left as it is.
    assert await store.complete_tasks(worker_pool, [outcome], "w1") == set()
    claimed = Outcome(task_id=done, attempt=1, kind=OutcomeKind.ERROR, error="rewritten")
    assert await store.complete_tasks(worker_pool, [claimed], "w1") == set()  # finished already
    assert await admin.fetchval(
        "SELECT status::text FROM taskqueue.tasks WHERE id = $1", queued
    ) == ("queued")
    assert await event_types(admin, done) == ["task_queued", "task_started", "task_succeeded"]


async def test_the_product_still_works_as_the_api_and_worker_roles(
    dsns: Dsns, admin: asyncpg.Pool, api_pool: asyncpg.Pool, worker_pool: asyncpg.Pool
) -> None:
    tq = TaskQueue(api_pool)
    # A bulk enqueue large enough to go as binary rows (store/bulk_copy.py).
    many = await tq.enqueue_many([NewTask(type="noop", payload={"i": i}) for i in range(150)])
    assert await admin.fetchval("SELECT count(*) FROM taskqueue.tasks") == 150
    assert await event_types(admin, many[0].id) == ["task_queued"]
    # A workflow, and a task that waits for an existing one.
    flow = await tq.workflows.submit(chain(NewTask(type="noop"), NewTask(type="noop")))
    waiting = await tq.workflows.enqueue("noop", depends_on=[many[1].id])
    assert waiting.status == "waiting"
    # Bulk cancel, retry, delete.
    cancelled = await tq.cancel_many([t.id for t in many[100:]])
    assert cancelled.changed == 50
    assert (await tq.retry_many([t.id for t in many[100:110]])).changed == 10
    assert (await tq.delete_many([t.id for t in many[110:]])).changed == 40
    # A caller's own transaction (psycopg) enqueues through the same function.
    with (
        SyncTaskQueue.connect(dsns.api, django=False, max_size=1) as sync_tq,
        psycopg.connect(dsns.api) as conn,
    ):
        sync_tq.enqueue("noop", {"from": "psycopg"}, connection=conn)
    # Claims and completions by the worker role, one statement each.
    while claimed := await store.claim_tasks(
        worker_pool, ["default"], 500, "w1", 30, types=["noop"]
    ):
        outcomes = [Outcome(task_id=c.id, attempt=1, kind=OutcomeKind.SUCCEEDED) for c in claimed]
        assert await store.complete_tasks(worker_pool, outcomes, "w1") == {c.id for c in claimed}
    assert (await tq.workflows.get(flow.id)).status == "succeeded"
    assert (await tq.get(waiting.id)).status in ("queued", "succeeded")
    report = await audit(admin)
    assert report.clean, report.violations
    # The worker role seals the history (a tick, as its sealer loop runs);
    # the API and auditor roles may not.
    events = await admin.fetchval("SELECT count(*) FROM taskqueue.task_events")
    assert await store.seal_history(worker_pool, 1_000_000) == events
    for role in (dsns.api, dsns.auditor):
        other = await db.connect(role)
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await store.seal_history(other, 10)
        finally:
            await other.close()
    # The auditor checks the history's hash chain: every event sealed, by
    # the worker's tick.
    auditor = await db.connect(dsns.auditor)
    try:
        assert await store.verify_history(auditor) == []
        writers = await auditor.fetch(
            "SELECT DISTINCT written_by FROM taskqueue.history_links ORDER BY 1"
        )
    finally:
        await auditor.close()
    assert [w["written_by"] for w in writers] == ["taskqueue_worker"]


def test_migrate_remakes_only_what_changed_and_keeps_the_grants(
    dsns: Dsns, admin: asyncpg.Pool
) -> None:
    # Nothing changed: nothing is remade, and the grants roles.sql gave stay.
    assert db.install_write_path(dsns.migrator) == []
    with psycopg.connect(dsns.admin) as conn:
        acl = conn.execute(
            "SELECT proacl::text FROM pg_proc WHERE oid = 'taskqueue.write_claim_tasks'::regproc"
        ).fetchone()
    assert acl is not None and "taskqueue_worker=X" in acl[0] and "taskqueue_api" not in acl[0]
    assert "=X/" not in acl[0].replace("taskqueue_worker=X/", "").replace(
        "taskqueue_migrator=X/", ""
    )  # PUBLIC has nothing


def test_a_marked_statement_names_its_roles_and_must_type_its_results() -> None:
    assert _sql.write_path_roles("complete_tasks") == ("worker",)
    assert _sql.write_path_roles("enqueue_tasks") == ("api",)
    assert _sql.write_path_roles("get_task") is None
    assert _sql.query("extend_leases") == (
        "SELECT * FROM taskqueue.write_extend_leases($1, $2, $3)"
    )
    assert "UPDATE taskqueue.tasks" in _sql.statement("extend_leases")
    with pytest.raises(write_path.WritePathError, match="void"):
        write_path._check("extend_leases", ("uuid[]", "text", "float8"), (("n", "void"),))
    with pytest.raises(write_path.WritePathError, match="parameters"):
        write_path._check("extend_leases", ("uuid[]",), ())


async def test_a_statement_can_give_its_function_a_planner_setting(admin: asyncpg.Pool) -> None:
    # expire_tasks.sql carries `-- write-path-set: enable_seqscan = off` (as
    # do the claim, the completion, the lease renewal and the rescue); a
    # statement without such a line gets only the pinned search_path.
    assert _sql.write_path_settings("expire_tasks") == (("enable_seqscan", "off"),)
    assert _sql.write_path_settings("enqueue_tasks") == ()
    rows = await admin.fetch(
        "SELECT proname, proconfig FROM pg_proc WHERE proname = ANY($1::text[])",
        ["write_expire_tasks", "write_enqueue_tasks"],
    )
    configs = {row["proname"]: row["proconfig"] for row in rows}
    assert configs["write_expire_tasks"] == [
        "search_path=pg_catalog, pg_temp",
        "enable_seqscan=off",
    ]
    assert configs["write_enqueue_tasks"] == ["search_path=pg_catalog, pg_temp"]


def test_a_planner_setting_line_takes_only_planner_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = "-- write-path: worker\n-- write-path-set: search_path = public\nSELECT 1 AS n\n"
    monkeypatch.setattr(_sql, "_read", lambda filename: text)
    _sql.write_path_settings.cache_clear()
    try:
        with pytest.raises(ValueError, match="write-path-set takes"):
            _sql.write_path_settings("any")
    finally:
        _sql.write_path_settings.cache_clear()


async def test_retention_cannot_be_turned_into_erasing_recent_history(
    admin: asyncpg.Pool, worker_pool: asyncpg.Pool
) -> None:
    now = await store.database_now(admin)
    for age in (10, 3):
        await store.ensure_event_partitions(admin, 0, now=now - timedelta(days=age))
    # A worker asks for everything before next month to go: only what is
    # older than history_policy's floor (7 days) goes, and the drop is recorded.
    dropped = await store.drop_event_partitions(worker_pool, now + timedelta(days=30))
    assert [p.starts and p.starts.date() for p in dropped] == [(now - timedelta(days=10)).date()]
    drops = await admin.fetch("SELECT dropped_by FROM taskqueue.history_drops")
    assert [d["dropped_by"] for d in drops] == ["taskqueue_worker"]
    with pytest.raises(DENIED):
        await worker_pool.execute("UPDATE taskqueue.history_policy SET min_event_retention = '0'")
