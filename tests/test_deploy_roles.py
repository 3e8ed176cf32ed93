"""deploy/postgres/roles.sql on a real server, applied the way an operator
applies it (psql, before and after `taskqueue migrate` run as the migrator):
each role can do its part of the job and nothing else, and the API and a
worker run end to end under their own roles."""

from __future__ import annotations

import re
import secrets
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psycopg
import pytest
from psycopg import sql

from taskqueue import db, store
from taskqueue.client import TaskQueue
from taskqueue.config import Settings
from taskqueue.embedded import find_bin_dir
from taskqueue.errors import QuotaExceeded, TaskStateConflict
from taskqueue.models import NewSchedule, NewTask, Outcome, OutcomeKind, RateLimit
from taskqueue.registry import load_registry
from taskqueue.store import _sql
from taskqueue.worker.expiry import ExpirySweep
from taskqueue.worker.leases import Rescuer
from taskqueue.worker.partitions import PartitionKeeper
from taskqueue.worker.pruner import Pruner
from taskqueue.worker.scheduler import Scheduler
from tests.api_helpers import api_client
from tests.helpers import (
    all_in_status,
    event_types,
    running_worker,
    seed_production_shape,
    wait_until,
)
from tests.test_deploy_kubernetes import keda_queries

POSTGRES = Path(__file__).resolve().parent.parent / "deploy" / "postgres"
ROLES = ("taskqueue_migrator", "taskqueue_api", "taskqueue_worker", "taskqueue_auditor")
DENIED = asyncpg.InsufficientPrivilegeError


@dataclass(frozen=True)
class Dsns:
    admin: str
    migrator: str
    api: str
    worker: str
    auditor: str


def as_role(dsn: str, role: str, password: str) -> str:
    parts = urlsplit(dsn)
    netloc = f"{role}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def psql(dsn: str, *args: str, single_transaction: bool = True) -> str:
    """psql as the documented command runs it; returns what it printed on stderr."""
    options = ["--single-transaction"] if single_transaction else []
    result = subprocess.run(
        [
            str(find_bin_dir() / "psql"),
            "--no-psqlrc",
            "--quiet",
            "-v",
            "ON_ERROR_STOP=1",
            *options,
            *args,
            dsn,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


def apply_roles(admin: str, passwords: dict[str, str]) -> str:
    """roles.sql, then the compose step's passwords, exactly as compose.yaml runs them."""
    return psql(
        admin,
        "-v",
        f"api_password={passwords['taskqueue_api']}",
        "-v",
        f"worker_password={passwords['taskqueue_worker']}",
        "-f",
        str(POSTGRES / "roles.sql"),
        "-f",
        str(POSTGRES / "compose-passwords.sql"),
    )


def set_passwords(admin: str, passwords: dict[str, str]) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        for role, password in passwords.items():
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )


def set_up(admin: str, passwords: dict[str, str]) -> tuple[Dsns, str]:
    """A new database the operator's way: roles.sql, migrate as the migrator,
    roles.sql again. Returns the DSNs and what the first pass said."""
    first_pass = psql(admin, "-f", str(POSTGRES / "roles.sql"))
    set_passwords(admin, passwords)  # works on servers with password auth too
    dsns = Dsns(admin, *(as_role(admin, role, passwords[role]) for role in ROLES))
    assert db.migrate(dsns.migrator) == db.known_migrations()
    apply_roles(admin, passwords)
    return dsns, first_pass


@pytest.fixture(scope="session")
def passwords() -> dict[str, str]:
    return {role: secrets.token_hex(16) for role in ROLES}


@pytest.fixture
def dsns(empty_database_url: str, passwords: dict[str, str]) -> Dsns:
    return set_up(empty_database_url, passwords)[0]


@pytest.fixture
async def admin(dsns: Dsns) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(dsns.admin, min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
async def api_pool(dsns: Dsns) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(dsns.api, min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
async def worker_pool(dsns: Dsns) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(dsns.worker, min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
async def auditor(dsns: Dsns) -> AsyncIterator[asyncpg.Connection]:
    conn = await db.connect(dsns.auditor)
    yield conn
    await conn.close()


def privileges(admin: str) -> set[tuple[object, ...]]:
    """Every grant and policy that concerns the taskqueue roles."""
    with psycopg.connect(admin) as conn:
        tables = conn.execute(
            "SELECT grantee, table_schema, table_name, privilege_type"
            " FROM information_schema.role_table_grants WHERE grantee LIKE 'taskqueue\\_%'"
        ).fetchall()
        columns = conn.execute(
            "SELECT grantee, table_name, column_name, privilege_type"
            " FROM information_schema.column_privileges WHERE grantee LIKE 'taskqueue\\_%'"
        ).fetchall()
        policies = conn.execute(
            "SELECT policyname, cmd, roles::text, qual, with_check FROM pg_policies"
        ).fetchall()
        routines = conn.execute(
            "SELECT grantee, routine_schema, routine_name, privilege_type"
            " FROM information_schema.role_routine_grants WHERE grantee LIKE 'taskqueue\\_%'"
        ).fetchall()
    return (
        {("routine", *r) for r in routines}
        | {("table", *r) for r in tables}
        | {("column", *r) for r in columns}
        | {("policy", *r) for r in policies}
    )


def test_roles_sql_sets_up_a_new_database_in_two_passes_and_is_idempotent(
    empty_database_url: str, passwords: dict[str, str]
) -> None:
    dsns, first_pass = set_up(empty_database_url, passwords)
    assert "not migrated yet" in first_pass
    with psycopg.connect(dsns.admin) as conn:
        attributes = conn.execute(
            "SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls,"
            " rolreplication FROM pg_roles WHERE rolname LIKE 'taskqueue\\_%' ORDER BY rolname"
        ).fetchall()
        owners = conn.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'taskqueue'"
        ).fetchall()
        security = conn.execute(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class"
            " WHERE oid = 'taskqueue.tasks'::regclass"
        ).fetchone()
    assert attributes == [(role, True, False, False, False, False, False) for role in sorted(ROLES)]
    assert owners == [("taskqueue_migrator",)]
    assert security == (True, False)  # the owner (the migrator) is not subject to it

    granted = privileges(dsns.admin)
    apply_roles(dsns.admin, passwords)
    apply_roles(dsns.admin, passwords)
    assert privileges(dsns.admin) == granted
    # A privilege given by hand is taken away by the next run.
    with psycopg.connect(dsns.admin, autocommit=True) as conn:
        conn.execute("GRANT DELETE, TRUNCATE ON taskqueue.tasks TO taskqueue_api")
        conn.execute("GRANT SELECT ON taskqueue.task_events TO taskqueue_worker")
        conn.execute("GRANT EXECUTE ON FUNCTION taskqueue.write_claim_tasks TO taskqueue_api")
    assert privileges(dsns.admin) != granted
    apply_roles(dsns.admin, passwords)
    assert privileges(dsns.admin) == granted

    # The migrator can take the schema down and up again; roles.sql follows.
    assert db.rollback(dsns.migrator) == db.known_migrations()[::-1]
    assert db.migrate(dsns.migrator) == db.known_migrations()
    apply_roles(dsns.admin, passwords)
    assert privileges(dsns.admin) == granted


async def test_each_role_logs_in_with_its_own_timeouts(dsns: Dsns) -> None:
    expected = {
        "migrator": ("15min", "1min", "off"),
        "api": ("5s", "10s", "off"),
        "worker": ("30s", "30s", "off"),
        "auditor": ("1min", "1min", "on"),
    }
    for name, settings in expected.items():
        conn = await asyncpg.connect(getattr(dsns, name))
        try:
            found = tuple(
                [
                    await conn.fetchval(f"SHOW {setting}")
                    for setting in (
                        "statement_timeout",
                        "idle_in_transaction_session_timeout",
                        "default_transaction_read_only",
                    )
                ]
            )
        finally:
            await conn.close()
        assert found == settings, name


async def test_the_api_role_enqueues_reads_cancels_and_retries_but_never_runs_a_task(
    dsns: Dsns, admin: asyncpg.Pool, api_pool: asyncpg.Pool, worker_pool: asyncpg.Pool
) -> None:
    tq = TaskQueue(api_pool)
    first = await tq.enqueue("noop", {"n": 1}, idempotency_key="once")
    again = await tq.submit([NewTask(type="noop", idempotency_key="once")])
    assert (again[0].task.id, again[0].created) == (first.id, False)
    cancelled = await tq.cancel((await tq.enqueue("noop")).id)
    assert cancelled.status == "cancelled"
    assert (await tq.retry(cancelled.id)).status == "queued"
    assert (await tq.get(first.id)).payload == {"n": 1}
    assert len(await tq.list(limit=10)) == 2
    assert [e.event_type for e in await tq.history(cancelled.id)] == [
        "task_queued",
        "task_cancelled",
        "task_requeued",
    ]
    assert (await tq.stats()).queued_tasks == 2
    await store.ping(api_pool)
    assert await store.applied_migrations(api_pool) == db.known_migrations()  # /ready

    running = await tq.enqueue("noop", priority=100)
    (claimed,) = await store.claim_tasks(
        worker_pool, ["default"], 1, "worker-1", 300, types=["noop"]
    )
    assert claimed.id == running.id
    before = await admin.fetchrow("SELECT * FROM taskqueue.tasks WHERE id = $1", running.id)
    assert before is not None

    with pytest.raises(TaskStateConflict):
        await tq.retry(running.id)
    # It may not extend a lease (a worker's write-path function) ...
    with pytest.raises(DENIED, match="write_extend_leases"):
        await store.extend_leases(api_pool, [running.id], "worker-1", 3600)
    # ... nor change a task but through the write path.
    with pytest.raises(DENIED):
        await api_pool.execute(
            "UPDATE taskqueue.tasks SET status = 'succeeded' WHERE id = $1", first.id
        )
    # What only a worker does is not granted to the API.
    outcome = Outcome(task_id=running.id, attempt=1, kind=OutcomeKind.SUCCEEDED)
    with pytest.raises(DENIED):
        await store.complete_tasks(api_pool, [outcome], "worker-1")

    with pytest.raises(DENIED):
        await store.claim_tasks(api_pool, ["default"], 10, "api", 30, types=["noop"])
    with pytest.raises(DENIED):
        await store.rescue_expired(api_pool, "api", now=before["locked_until"] + timedelta(1))

    for statement in (
        "INSERT INTO taskqueue.tasks (id, type, status) VALUES (gen_random_uuid(), 'x', 'running')",
        "UPDATE taskqueue.tasks SET payload = '{}'",
        "TRUNCATE taskqueue.tasks",
        "UPDATE taskqueue.task_events SET error = 'rewritten'",
        "DELETE FROM taskqueue.task_events",
        "CREATE TABLE taskqueue.mine (id int)",
        "CREATE TABLE public.mine (id int)",
        "DELETE FROM taskqueue.tasks",  # bulk delete (finished only) is the write path's
    ):
        with pytest.raises(DENIED):
            await api_pool.execute(statement)
    after = await admin.fetchrow("SELECT * FROM taskqueue.tasks WHERE id = $1", running.id)
    assert after is not None
    assert dict(after.items()) == dict(before.items())
    assert after["status"] == "running"

    # It may cancel a running task: that ends the lease, and the worker's
    # outcome then fails the fence.
    cancelled_running = await tq.cancel(running.id)
    assert (cancelled_running.status, cancelled_running.locked_by) == ("cancelled", None)
    assert await store.complete_tasks(worker_pool, [outcome], "worker-1") == set()
    assert [e.event_type for e in await tq.history(running.id)][-1] == "task_cancelled"


async def test_the_worker_role_claims_completes_renews_and_rescues_and_nothing_more(
    admin: asyncpg.Pool, api_pool: asyncpg.Pool, worker_pool: asyncpg.Pool
) -> None:
    tq = TaskQueue(api_pool)
    ok, retried, released, failed, abandoned = await tq.enqueue_many(
        [
            NewTask(type="noop", priority=5),
            NewTask(type="noop", priority=4, max_retries=3),
            NewTask(type="noop", priority=3),
            NewTask(type="noop", priority=2, max_retries=0),
            NewTask(type="noop", priority=1),
        ]
    )
    claimed = await store.claim_tasks(worker_pool, ["default"], 10, "worker-1", 30, types=["noop"])
    assert [c.id for c in claimed] == [ok.id, retried.id, released.id, failed.id, abandoned.id]
    held = [c.id for c in claimed]
    assert await store.extend_leases(worker_pool, held, "worker-1", 60) == set(held)
    outcomes = [
        Outcome(task_id=ok.id, attempt=1, kind=OutcomeKind.SUCCEEDED, result={"done": True}),
        Outcome(task_id=retried.id, attempt=1, kind=OutcomeKind.ERROR, error="boom"),
        Outcome(task_id=released.id, attempt=1, kind=OutcomeKind.RELEASED),
        Outcome(task_id=failed.id, attempt=1, kind=OutcomeKind.TIMEOUT, error="slow"),
    ]
    recorded = await store.complete_tasks(worker_pool, outcomes, "worker-1")
    assert recorded == {ok.id, retried.id, released.id, failed.id}
    # The worker holding `abandoned` dies; another worker's rescuer takes it back.
    later = await admin.fetchval("SELECT now() + interval '2 minutes'")
    rescued = await Rescuer(worker_pool, worker_id="worker-2", interval=60).run_once(now=later)
    assert rescued == [(abandoned.id, "queued")]

    rows = await admin.fetch(
        "SELECT id, status::text FROM taskqueue.tasks WHERE id = ANY($1)",
        [ok.id, retried.id, released.id, failed.id, abandoned.id],
    )
    statuses = {row["id"]: row["status"] for row in rows}
    assert statuses == {
        ok.id: "succeeded",
        retried.id: "queued",
        released.id: "queued",
        failed.id: "failed",
        abandoned.id: "queued",
    }
    assert await event_types(admin, ok.id) == ["task_queued", "task_started", "task_succeeded"]
    assert await event_types(admin, retried.id) == [
        "task_queued",
        "task_started",
        "task_retry_scheduled",
    ]
    assert (await event_types(admin, released.id))[-1] == "task_released"
    assert (await event_types(admin, failed.id))[-1] == "task_failed"
    assert (await event_types(admin, abandoned.id))[-1] == "task_lease_expired"

    # Producing, cancelling, retrying and reading history are not its job.
    with pytest.raises(DENIED):
        await TaskQueue(worker_pool).enqueue("noop")
    with pytest.raises(DENIED):
        await store.cancel_task(worker_pool, released.id)  # it may never cancel
    for statement in (
        "SELECT * FROM taskqueue.task_events",
        "SELECT * FROM taskqueue.task_history",
        "DELETE FROM _yoyo_migration",
        "UPDATE taskqueue.tasks SET payload = '{}'",
        "UPDATE taskqueue.tasks SET priority = 1000",
        "DELETE FROM taskqueue.tasks",
        "DELETE FROM taskqueue.task_events",
        "CREATE TABLE taskqueue.mine (id int)",
    ):
        with pytest.raises(DENIED):
            await worker_pool.execute(statement)
    assert (
        await admin.fetchval("SELECT status::text FROM taskqueue.tasks WHERE id = $1", released.id)
    ) == "queued"
    # It prunes finished tasks past retention (through prune_tasks()) and
    # folds the finish counters, and deletes nothing else.
    much_later = await admin.fetchval("SELECT now() + interval '30 days'")
    pruner = Pruner(worker_pool, worker_id="worker-2", retention=Settings().retention)
    assert await pruner.run_once(now=much_later) == 2  # ok (succeeded) and failed
    assert (await event_types(admin, failed.id))[-1] == "task_deleted"
    assert await admin.fetchval("SELECT count(*) FROM taskqueue.tasks") == 3
    assert await store.fold_queue_counts(worker_pool) >= 0
    with pytest.raises(DENIED):
        await api_pool.fetch(
            "SELECT * FROM taskqueue.prune_tasks(NULL, 1, '1s', '1s', '1s', '1s', '1s', '1s', 'x')"
        )


async def test_the_roles_end_tasks_with_expiry_and_callbacks(
    admin: asyncpg.Pool, api_pool: asyncpg.Pool, worker_pool: asyncpg.Pool
) -> None:
    tq = TaskQueue(api_pool)
    hook = {"url": "https://h.example/done"}
    finished = await tq.enqueue("noop", callback=hook)
    stale = await tq.enqueue("noop", ttl_seconds=60, callback=hook)
    dropped = await tq.enqueue("noop", queue="held", callback=hook)
    await admin.execute(
        "UPDATE taskqueue.tasks SET expires_at = now() - interval '1 second' WHERE id = $1",
        stale.id,
    )
    # The worker: a claim passes over the expired task, a completion and the
    # sweep queue deliveries (its policy lets it insert those, nothing else).
    (claimed,) = await store.claim_tasks(worker_pool, ["default"], 10, "w1", 30, types=["noop"])
    assert claimed.id == finished.id and claimed.has_callback
    outcome = Outcome(task_id=finished.id, attempt=1, kind=OutcomeKind.SUCCEEDED)
    assert await store.complete_tasks(worker_pool, [outcome], "w1", callbacks=True)
    assert await ExpirySweep(worker_pool, worker_id="w1").run_once() == 1
    assert await store.prune_expired(worker_pool, timedelta(0), worker_id="w1", limit=10) == 1
    # The API: a cancel queues one too.
    await tq.cancel(dropped.id)
    deliveries = await admin.fetch(
        "SELECT payload->'body'->>'status' AS status FROM taskqueue.tasks"
        " WHERE type = 'taskqueue.callback' ORDER BY id"
    )
    assert [d["status"] for d in deliveries] == ["succeeded", "expired", "cancelled"]
    with pytest.raises(DENIED):  # a worker inserts no task of its own choosing
        await worker_pool.execute(
            "INSERT INTO taskqueue.tasks (id, type, payload)"
            " VALUES (gen_random_uuid(), 'noop', '{}')"
        )


async def test_the_worker_keeps_the_history_partitions_and_no_other_role_may(
    admin: asyncpg.Pool,
    api_pool: asyncpg.Pool,
    worker_pool: asyncpg.Pool,
    auditor: asyncpg.Connection,
) -> None:
    keeper = PartitionKeeper(worker_pool, retain_events=timedelta(days=30), days_ahead=5)
    made, _ = await keeper.run_once()
    assert len(made) == 2 and keeper.readings()["denied"] == 0
    old_day = await admin.fetchval("SELECT now() - interval '40 days'")
    (old,) = await store.ensure_event_partitions(worker_pool, 0, now=old_day)
    owners = await admin.fetch(
        "SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class WHERE relname = ANY($1)",
        [*made, old],
    )
    assert [r["owner"] for r in owners] == ["taskqueue_migrator"]
    assert [p.name for p in (await keeper.run_once())[1]] == [old]

    # Every role may list them (the API's metrics read the default partition).
    assert await store.default_partition_rows(api_pool) == 0
    assert (await store.event_partitions(auditor))[0].is_default
    later = await admin.fetchval("SELECT now() + interval '30 days'")
    for attempt in (
        lambda: store.ensure_event_partitions(api_pool, 3, now=later),
        lambda: store.drop_event_partitions(api_pool, later),
        lambda: worker_pool.execute("SELECT taskqueue.create_event_partition(current_date + 90)"),
    ):
        with pytest.raises(DENIED):
            await attempt()


async def test_the_api_role_runs_queue_settings_and_schedules(
    admin: asyncpg.Pool, api_pool: asyncpg.Pool
) -> None:
    tq = TaskQueue(api_pool)
    # Limits set and cleared: a settings row that limits nothing is deleted.
    limited = await tq.set_limits("mail", concurrency=5)
    assert limited.concurrency_limit == 5
    await tq.pause("mail")
    await tq.resume("mail")
    await tq.set_limits("mail", concurrency=None)
    assert await admin.fetchval("SELECT count(*) FROM taskqueue.queues") == 0
    assert [a.action for a in await tq.actions()][:2] == ["limit", "resume"]

    created = await tq.create_schedule(NewSchedule(name="nightly", type="noop", cron="0 3 * * *"))
    assert created.source == "api"
    assert (await tq.pause_schedule("nightly")).paused
    assert not (await tq.resume_schedule("nightly")).paused
    assert (await tq.update_schedule("nightly", priority=7)).priority == 7
    triggered = await tq.trigger_schedule("nightly")
    assert (triggered.schedule, triggered.status) == ("nightly", "queued")
    assert [fire.outcome for fire in await store.recent_schedule_fires(api_pool, "nightly")] == [
        "triggered"
    ]
    await tq.delete_schedule("nightly")
    assert await admin.fetchval("SELECT count(*) FROM taskqueue.schedules") == 0


async def test_the_worker_role_defines_and_fires_schedules_and_inserts_no_other_task(
    admin: asyncpg.Pool, api_pool: asyncpg.Pool, worker_pool: asyncpg.Pool
) -> None:
    registry = load_registry([])  # the built-in types
    registry.schedule("every-minute", type="noop", every_seconds=60)
    scheduler = Scheduler(worker_pool, registry, worker_id="worker-1")
    first = await admin.fetchval("SELECT now() + interval '2 minutes'")
    (result,) = await scheduler.run_once(now=first)
    assert (result.name, len(result.fired)) == ("every-minute", 1)
    task = await admin.fetchrow(
        "SELECT status::text, schedule, slot FROM taskqueue.tasks WHERE schedule = 'every-minute'"
    )
    assert task is not None
    assert (task["status"], task["slot"]) == ("queued", result.fired[0])
    assert await admin.fetchval("SELECT outcome FROM taskqueue.schedule_fires") == "fired"
    # An operator's schedule, fired by the worker too.
    await TaskQueue(api_pool).create_schedule(
        NewSchedule(name="operator", type="noop", every_seconds=3600)
    )
    later = await admin.fetchval("SELECT now() + interval '2 hours'")
    assert {r.name for r in await scheduler.run_once(now=later)} == {"every-minute", "operator"}

    # The tasks it inserts are a schedule's, queued and unleased; it deletes
    # no schedule.
    for statement in (
        "INSERT INTO taskqueue.tasks (id, type) VALUES (gen_random_uuid(), 'noop')",
        "INSERT INTO taskqueue.tasks (id, type, schedule, status)"
        " VALUES (gen_random_uuid(), 'noop', 'every-minute', 'running')",
        "DELETE FROM taskqueue.schedules",
        "DELETE FROM taskqueue.schedule_fires",
    ):
        with pytest.raises(DENIED):
            await worker_pool.execute(statement)


async def test_the_write_path_runs_the_worker_statements_as_the_owner_on_their_indexes(
    admin: asyncpg.Pool, worker_pool: asyncpg.Pool
) -> None:
    # The worker's claim and rescue run inside functions owned by the
    # migrator, which row-level security does not apply to: their plans are
    # the owner's.
    functions = await admin.fetch(
        "SELECT w.name, p.proname, pg_get_userbyid(p.proowner) AS owner, p.prosecdef,"
        " p.proconfig FROM pg_proc p"
        " JOIN taskqueue.write_statements w ON w.function::regprocedure = p.oid"
    )
    assert {f["proname"] for f in functions} >= {"write_claim_tasks", "write_rescue_expired"}
    for function in functions:
        assert function["owner"] == "taskqueue_migrator", function
        assert function["prosecdef"], function
        # The pinned path, then the planner settings its query file names
        # (`-- write-path-set:`), and nothing else.
        named = [f"{k}={v}" for k, v in _sql.write_path_settings(function["name"])]
        assert function["proconfig"] == ["search_path=pg_catalog, pg_temp", *named], function
    # Mostly finished tasks, a backlog, some running: as in production.
    await seed_production_shape(admin, backlog=200, claimed=100)
    async with admin.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL ROLE taskqueue_migrator")
        claim = await conn.fetch(
            "EXPLAIN " + store.statement("claim_tasks"),
            ["default"],
            10,
            "worker-2",
            30.0,
            ["noop", "sleep"],
            [],  # types that read their parents' results
        )
        rescue = await conn.fetch(
            "EXPLAIN " + store.statement("rescue_expired"), None, 100, "w", datetime.now(UTC)
        )
    claim_plan = "\n".join(r[0] for r in claim)
    rescue_plan = "\n".join(r[0] for r in rescue)
    assert "Index Scan using tasks_claim_idx" in claim_plan
    # Each lane is read from its floor (the planner names the lane l or l_1).
    assert re.search(
        r"Index Cond: \(\(queue = (l\w*)\.queue\) AND \(type = \1\.type\)"
        r" AND \(priority = \1\.priority\)"
        # The lane's tenant ('' for tasks of none), then its floor.
        r" AND \(COALESCE\(tenant, ''::text\) = \1\.tenant\) AND \(run_at >= \1\.floor_at\)"
        r" AND \(run_at <= now\(\)\)\)",
        claim_plan,
    )
    assert "Index Scan using tasks_lease_idx" in rescue_plan
    assert "Index Cond: ((locked_until >= " in rescue_plan  # from the rescuer's floor
    assert "Seq Scan" not in claim_plan + rescue_plan


async def test_the_auditor_reads_everything_and_changes_nothing(
    admin: asyncpg.Pool,
    api_pool: asyncpg.Pool,
    worker_pool: asyncpg.Pool,
    auditor: asyncpg.Connection,
) -> None:
    tq = TaskQueue(api_pool)
    task = await tq.enqueue("noop", name="audited")
    await tq.enqueue("noop", delay=3600)
    await store.claim_tasks(worker_pool, ["default"], 1, "worker-1", 30, types=["noop"])

    history = await auditor.fetch(
        "SELECT task_name, event_type, worker_id FROM taskqueue.task_history"
        " WHERE task_id = $1 ORDER BY event_id",
        task.id,
    )
    assert [tuple(r) for r in history] == [
        ("audited", "task_queued", None),
        ("audited", "task_started", "worker-1"),
    ]
    assert await auditor.fetchval("SELECT count(*) FROM taskqueue.tasks") == 2
    assert await auditor.fetchval("SELECT count(*) FROM taskqueue.task_events") == 3
    assert await auditor.fetchval("SELECT count(*) FROM _yoyo_migration") == len(
        db.known_migrations()
    )
    assert (await store.get_task(auditor, task.id)) is not None
    assert len(await store.task_history(auditor, task.id)) == 2
    assert (await store.queue_states(auditor, totals=True)).stats().running_tasks == 1
    # The KEDA scaler logs in as the auditor.
    counts = {name: await auditor.fetchval(query) for name, query in keda_queries().items()}
    assert counts == {"due-queued": 0, "in-flight": 1}

    writes: list[Callable[[], Awaitable[object]]] = [
        lambda: TaskQueue(api_pool).enqueue("noop", connection=auditor),
        lambda: store.claim_tasks(auditor, ["default"], 1, "auditor", 30, types=["noop"]),
        lambda: store.cancel_task(auditor, task.id),
        lambda: store.rescue_expired(auditor, "auditor"),
        lambda: store.extend_leases(auditor, [task.id], "worker-1", 30),
        lambda: auditor.execute("UPDATE taskqueue.task_events SET error = 'x'"),
        lambda: auditor.execute("DELETE FROM taskqueue.task_events"),
        lambda: auditor.execute("DELETE FROM taskqueue.tasks"),
        lambda: auditor.execute("CREATE TABLE taskqueue.mine (id int)"),
    ]
    # Read-only sessions by default (a write-path function is refused
    # before: the auditor may not run one)...
    for write in writes:
        with pytest.raises((asyncpg.ReadOnlySQLTransactionError, DENIED)):
            await write()
    # ... and without the privileges even when the session is switched back.
    await auditor.execute("SET default_transaction_read_only = off")
    for write in writes:
        with pytest.raises(DENIED):
            await write()
    status = await admin.fetchval("SELECT status::text FROM taskqueue.tasks WHERE id = $1", task.id)
    assert status == "running"


async def has_rows(pool: asyncpg.Pool, count_query: str) -> bool:
    return bool(await pool.fetchval(count_query))


async def no_rows(pool: asyncpg.Pool, count_query: str) -> bool:
    return not await pool.fetchval(count_query)


async def test_the_api_and_a_worker_run_end_to_end_under_their_own_roles(
    dsns: Dsns, admin: asyncpg.Pool, api_pool: asyncpg.Pool
) -> None:
    async with (
        running_worker(dsns.worker, concurrency=4) as worker,
        api_client(dsns.api) as client,
    ):
        assert (await client.get("/ready")).status_code == 200
        created = await client.post("/api/tasks", json={"type": "noop", "name": "via http"})
        assert created.status_code == 201
        failing = await client.post(
            "/api/tasks", json={"type": "fail", "payload": {"message": "no"}, "max_retries": 1}
        )
        assert failing.status_code == 201
        later = await client.post(
            "/api/tasks", json={"type": "noop", "run_at": "2999-01-01T00:00:00Z"}
        )
        assert later.status_code == 201
        batch = await TaskQueue(api_pool).enqueue_many([NewTask(type="noop") for _ in range(20)])
        done_ids = [uuid.UUID(created.json()["id"]), *(t.id for t in batch)]
        failing_id = uuid.UUID(failing.json()["id"])
        await wait_until(lambda: all_in_status(admin, done_ids, "succeeded"))
        await wait_until(lambda: all_in_status(admin, [failing_id], "failed"))

        cancel = await client.post(f"/api/tasks/{later.json()['id']}/cancel")
        assert (cancel.status_code, cancel.json()["status"]) == (200, "cancelled")
        retry = await client.post(f"/api/tasks/{failing_id}/retry")
        assert (retry.status_code, retry.json()["status"]) == (200, "queued")
        await wait_until(lambda: all_in_status(admin, [failing_id], "failed"))
        history = (await client.get(f"/api/tasks/{failing_id}/history")).json()
        # The worker's scheduler fires an operator's schedule under its role.
        schedule = {"name": "each-second", "type": "noop", "every_seconds": 1}
        assert (await client.post("/api/schedules", json=schedule)).status_code == 201
        fired = "SELECT count(*) FROM taskqueue.tasks WHERE schedule = 'each-second'"
        finished = fired + " AND status = 'succeeded'"
        await wait_until(lambda: has_rows(admin, finished))
        assert (await client.delete("/api/schedules/each-second")).status_code == 204
        await wait_until(lambda: no_rows(admin, fired + " AND status <> 'succeeded'"))
        stats = (await client.get("/api/stats")).json()

    assert [e["event_type"] for e in history] == [
        "task_queued",
        "task_started",
        "task_retry_scheduled",
        "task_started",
        "task_failed",
        "task_requeued",
        "task_started",
        "task_retry_scheduled",
        "task_started",
        "task_failed",
    ]
    assert {e["worker_id"] for e in history if e["event_type"] == "task_started"} == {
        worker.worker_id
    }
    scheduled = await admin.fetchval(
        "SELECT count(*) FROM taskqueue.tasks WHERE schedule IS NOT NULL"
    )
    assert scheduled >= 1
    assert stats["succeeded_tasks"] == 21 + scheduled
    assert stats["failed_tasks"] == 1


async def test_dependencies_work_under_the_api_and_worker_roles(
    admin: asyncpg.Pool, api_pool: asyncpg.Pool, worker_pool: asyncpg.Pool
) -> None:
    from taskqueue.worker.dependencies import DependencyReconciler
    from taskqueue.workflows import chain

    tq = TaskQueue(api_pool)
    wf = await tq.workflows.submit(chain(NewTask(type="noop"), NewTask(type="noop")))
    first, second = (t.id for t in wf.tasks)
    (claimed,) = await store.claim_tasks(worker_pool, ["default"], 10, "w1", 30, types=["noop"])
    # The API makes a task wait for a running parent (locked through lock_parents).
    late = await tq.workflows.enqueue("noop", depends_on=[claimed.id])
    assert late.status == "waiting"
    done = Outcome(task_id=first, attempt=1, kind=OutcomeKind.SUCCEEDED)
    assert await store.complete_tasks(worker_pool, [done], "w1") == {first}
    rows = await admin.fetch(
        "SELECT id, status::text FROM taskqueue.tasks WHERE id = ANY($1)", [second, late.id]
    )
    statuses = {row["id"]: row["status"] for row in rows}
    assert statuses == {second: "queued", late.id: "queued"}
    # Cancelling a waiting task and retrying it under the API role; the
    # reconciler under the worker role.
    blocked = await tq.workflows.enqueue("noop", depends_on=[second])
    await tq.cancel(blocked.id)
    assert (await tq.retry(blocked.id)).status == "waiting"
    assert await DependencyReconciler(worker_pool, worker_id="w1").run_once() == (0, 0)
    assert (await tq.workflows.get(wf.id)).status == "running"


async def test_tenant_quotas_work_under_the_api_and_worker_roles(
    dsns: Dsns, admin: asyncpg.Pool, api_pool: asyncpg.Pool
) -> None:
    tq = TaskQueue(api_pool)
    assert (await tq.tenants.set_limits("acme", max_queued=2)).max_queued == 2
    first = await tq.enqueue("noop", tenant="acme")
    await tq.enqueue("fail", {}, max_retries=0, tenant="acme")
    with pytest.raises(QuotaExceeded):
        await tq.enqueue("noop", tenant="acme")
    async with running_worker(dsns.worker):
        await wait_until(lambda: all_in_status(admin, [first.id], "succeeded"))
        await wait_until(
            lambda: no_rows(
                admin,
                "SELECT count(*) FROM taskqueue.tasks WHERE tenant = 'acme' AND status = 'queued'",
            )
        )
    assert (await tq.tenants.get("acme")).unfinished == 0
    (failed,) = await tq.list(tenant="acme", status="failed")
    await tq.retry(failed.id)
    await tq.cancel(failed.id)
    assert (await tq.tenants.get("acme")).unfinished == 0
    # Only the admission function writes the counter.
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await api_pool.execute("UPDATE taskqueue.tenants SET unfinished = 0")


async def test_tenant_rate_limits_work_under_the_api_and_worker_roles(
    dsns: Dsns, admin: asyncpg.Pool, api_pool: asyncpg.Pool, worker_pool: asyncpg.Pool
) -> None:
    tq = TaskQueue(api_pool)
    limited = await tq.tenants.set_limits("acme", rate=(2, 3600))
    assert (limited.rate_limit, limited.recent_starts) == (
        RateLimit(limit=2, period_seconds=3600),
        0,
    )
    acme = await tq.enqueue_many([NewTask(type="noop", tenant="acme")] * 5)
    others = await tq.enqueue_many([NewTask(type="noop")] * 3)
    async with running_worker(dsns.worker):
        await wait_until(lambda: all_in_status(admin, [t.id for t in others], "succeeded"))
        await wait_until(lambda: tenant_started(admin, "acme", 2))
    assert (await tq.tenants.get("acme")).recent_starts == 2
    assert (
        await admin.fetchval(
            "SELECT count(*) FROM taskqueue.tasks WHERE tenant = 'acme' AND status = 'queued'"
        )
        == 3
    )
    # Only the claim's function keeps the window: neither role writes it.
    for pool in (api_pool, worker_pool):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await pool.execute("UPDATE taskqueue.tenant_rates SET rate_window_n = '{}'")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await worker_pool.execute("DELETE FROM taskqueue.tenant_rates")
    assert (await tq.tenants.set_limits("acme", rate=None)).rate_limit is None
    async with running_worker(dsns.worker):
        await wait_until(lambda: all_in_status(admin, [t.id for t in acme], "succeeded"))


async def tenant_started(pool: asyncpg.Pool, tenant: str, n: int) -> bool:
    started = await pool.fetchval(
        "SELECT count(*) FROM taskqueue.tasks WHERE tenant = $1 AND started_at IS NOT NULL",
        tenant,
    )
    return bool(started == n)
