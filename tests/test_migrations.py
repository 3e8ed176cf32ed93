from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, timedelta
from pathlib import Path

import asyncpg
import pytest

from taskqueue import db, store
from taskqueue.client import TaskQueue
from taskqueue.models import uuid7


async def tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        # Tables and views, not the history's daily partitions.
        rows = await conn.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'taskqueue' AND c.relkind IN ('r', 'p', 'v')"
            " AND NOT c.relispartition"
        )
    finally:
        await conn.close()
    return {r["relname"] for r in rows}


TABLES = {
    "tasks",
    "task_events",
    "task_history",
    "queues",
    "workers",
    "operator_actions",
    "schedules",
    "schedule_fires",
    "claim_lanes",
    "queue_retention",
    "queue_counts",
    "prune_marks",
    "revoked_sessions",
    "task_dependencies",
    "workflows",
    "sequences",
    "tenants",
    "tenant_counts",
    "tenant_rates",
    "write_statements",
    "history_links",
    "history_genesis",
    "history_drops",
    "history_policy",
    "history_sealer",
}


def migrate_before(
    dsn: str, first_left_out: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migrate ``dsn`` as a release before ``first_left_out`` would have:
    only the migrations named before it."""
    before = tmp_path / f"before_{first_left_out}"
    before.mkdir()
    for path in db.migrations_dir().glob("*.sql"):
        if path.name < first_left_out:
            shutil.copy(path, before / path.name)
    with monkeypatch.context() as patched:
        patched.setenv("TASKQUEUE_MIGRATIONS_DIR", str(before))
        db.migrate(dsn)


def rollback_to(dsn: str, migration: str) -> None:
    """Roll back ``migration`` and every one after it."""
    later = [m for m in db.known_migrations() if m >= migration]
    assert db.rollback(dsn, len(later)) == list(reversed(later))


async def test_migrations_apply_roll_back_and_apply_again(empty_database_url: str) -> None:
    dsn = empty_database_url
    assert db.migrate(dsn) == db.known_migrations()
    assert await tables(dsn) == TABLES
    assert db.migrate(dsn) == []  # idempotent

    assert db.rollback(dsn) == list(reversed(db.known_migrations()))
    assert await tables(dsn) == set()

    assert db.migrate(dsn) == db.known_migrations()
    assert await tables(dsn) == TABLES


async def test_every_migration_has_a_rollback() -> None:
    folder = db.migrations_dir()
    for migration in db.known_migrations():
        assert (folder / f"{migration}.rollback.sql").exists(), migration


async def test_partitioning_the_history_keeps_every_event_and_its_id(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = empty_database_url
    migrate_before(dsn, "0008", tmp_path, monkeypatch)
    conn = await asyncpg.connect(dsn)
    try:
        now = await conn.fetchval("SELECT now()")
        days = [now - timedelta(days=age) for age in (10, 3, 0)]
        await conn.execute(
            "INSERT INTO taskqueue.task_events (task_id, at, event_type, status, attempt)"
            " SELECT gen_random_uuid(), at, 'task_queued', 'queued', 0"
            " FROM unnest($1::timestamptz[]) at",
            days,
        )
        # An id drawn but never used: the new sequence must not give it again.
        await conn.execute("SELECT nextval(pg_get_serial_sequence('taskqueue.task_events', 'id'))")
        old = [
            tuple(r)
            for r in await conn.fetch("SELECT id, at FROM taskqueue.task_events ORDER BY id")
        ]

        assert db.migrate(dsn) == [m for m in db.known_migrations() if m >= "0008"]

        kept = [
            (r["id"], r["at"], r["part"])
            for r in await conn.fetch(
                "SELECT id, at, tableoid::regclass::text AS part"
                " FROM taskqueue.task_events ORDER BY id"
            )
        ]
        assert [(i, at) for i, at, _ in kept] == old
        assert [part for *_, part in kept] == [
            f"taskqueue.task_events_{d.astimezone(UTC):%Y%m%d}" for d in days
        ]
        new_id = await conn.fetchval(
            "INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt)"
            " VALUES (gen_random_uuid(), 'task_queued', 'queued', 0) RETURNING id"
        )
        assert new_id == old[-1][0] + 2
        assert await conn.fetchval("SELECT count(*) FROM taskqueue.task_history") == 4

        db.rollback(dsn, 1)
        assert await conn.fetchval("SELECT count(*) FROM taskqueue.task_events") == 4
        again = await conn.fetchval(
            "INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt)"
            " VALUES (gen_random_uuid(), 'task_queued', 'queued', 0) RETURNING id"
        )
        assert again == new_id + 1
        assert await conn.fetchval("SELECT count(*) FROM taskqueue.task_history") == 5
    finally:
        await conn.close()


async def test_every_migrate_makes_the_next_days_partitions_that_are_missing(
    database_url: str,
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        tomorrow = await conn.fetchval(
            "SELECT 'task_events_' || to_char((now() AT TIME ZONE 'UTC')::date + 1, 'YYYYMMDD')"
        )
        await conn.execute(
            f"ALTER TABLE taskqueue.task_events DETACH PARTITION taskqueue.{tomorrow}"
        )
        await conn.execute(f"DROP TABLE taskqueue.{tomorrow}")

        assert db.migrate(database_url) == []  # nothing pending, and yet:

        assert await conn.fetchval("SELECT to_regclass('taskqueue.' || $1) IS NOT NULL", tomorrow)
    finally:
        await conn.close()


async def test_a_workflows_task_ids_move_onto_its_row_and_back(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 0018_graph_drain: the workflow's tasks are found through workflows.task_ids
    # (filled from tasks.workflow_id) instead of tasks_workflow_idx.
    dsn = empty_database_url
    # Before the write path: its functions are this version's.
    migrate_before(dsn, "0015", tmp_path, monkeypatch)
    conn = await asyncpg.connect(dsn)
    try:
        workflow = await conn.fetchval("SELECT gen_random_uuid()")
        members = sorted([await conn.fetchval("SELECT gen_random_uuid()") for _ in range(2)])
        await conn.execute(
            "INSERT INTO taskqueue.workflows (id, name) VALUES ($1, 'old')", workflow
        )
        insert = (
            "INSERT INTO taskqueue.tasks (id, queue, type, workflow_id)"
            " SELECT id, 'default', 'noop', $2 FROM unnest($1::uuid[]) id"
        )
        await conn.execute(insert, members, workflow)
        await conn.execute(insert, [await conn.fetchval("SELECT gen_random_uuid()")], None)

        assert "0018_graph_drain" in db.migrate(dsn)
        ids = await conn.fetchval(
            "SELECT task_ids FROM taskqueue.workflows WHERE id = $1", workflow
        )
        assert ids == members
        index = "SELECT to_regclass('taskqueue.tasks_workflow_idx') IS NOT NULL"
        assert not await conn.fetchval(index)

        rollback_to(dsn, "0018_graph_drain")
        assert await conn.fetchval(index)
        assert not await conn.fetchval(
            "SELECT EXISTS (SELECT FROM information_schema.columns"
            " WHERE table_schema = 'taskqueue' AND table_name = 'workflows'"
            " AND column_name = 'task_ids')"
        )
    finally:
        await conn.close()


async def test_the_history_chain_goes_on_across_0021_both_ways(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before 0021_sealed_by_workers a trigger sealed each statement's events;
    # from it on, the workers' ticks do. Both kinds of links verify together,
    # and rolling it back gives the trigger its place again.
    dsn = empty_database_url
    migrate_before(dsn, "0021", tmp_path, monkeypatch)
    pool = await db.create_pool(dsn, min_size=1, max_size=2)
    catch = "SELECT to_regproc('taskqueue.write_catch_late_tasks') IS NOT NULL"
    try:
        # The lanes' catch reads the events' xid (0021): no function before it.
        assert await pool.fetchval(catch) is False
        tq = TaskQueue(pool)
        await tq.enqueue("noop", {"by": "trigger"})
        assert await pool.fetchval("SELECT count(*) FROM taskqueue.history_links") == 1

        assert db.migrate(dsn)[0] == "0021_sealed_by_workers"
        assert await pool.fetchval(catch) is True
        await pool.expire_connections()
        after = await tq.enqueue("noop", {"by": "tick"})
        assert await store.verify_history(pool) == []  # pending, not named
        assert await store.seal_history(pool, 100) == 1
        lanes = await pool.fetch("SELECT lane FROM taskqueue.history_links ORDER BY at")
        assert [r["lane"] for r in lanes][-1] == 16 and len(lanes) == 2
        assert await store.verify_history(pool) == []
        await pool.execute("UPDATE taskqueue.tasks SET payload = '{}' WHERE id = $1", after.id)
        assert [p.task_id for p in await store.verify_history(pool)] == [after.id]
        await pool.execute(
            'UPDATE taskqueue.tasks SET payload = \'{"by": "tick"}\' WHERE id = $1', after.id
        )

        rollback_to(dsn, "0021_sealed_by_workers")
        await pool.expire_connections()
        await tq.enqueue("noop", {"by": "trigger again"})
        # Sealed as its statement wrote it, in one of the trigger's lanes.
        newest = await pool.fetchrow(
            "SELECT lane, length(entries) / 56 AS n FROM taskqueue.history_links"
            " ORDER BY at DESC LIMIT 1"
        )
        assert newest is not None and newest["lane"] < 16 and newest["n"] == 1
    finally:
        await pool.close()


async def test_counts_from_before_0023_are_not_finishes_of_the_last_minute(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 0023_recent_from_counts times queue_counts rows; the rows already there
    # (the folded totals of all time among them) must not be read as what
    # finished in the minute after the upgrade.
    dsn = empty_database_url
    migrate_before(dsn, "0023", tmp_path, monkeypatch)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO taskqueue.queue_counts (queue, succeeded, failed) VALUES ('old', 500, 7)"
        )
        assert db.migrate(dsn)[0] == "0023_recent_from_counts"
        (old,) = (await store.queue_states(conn, totals=True)).queues
        assert (old.succeeded, old.failed) == (500, 7)
        assert (old.finished_last_minute, old.failed_last_minute) == (0, 0)
        await conn.execute(
            "INSERT INTO taskqueue.queue_counts (queue, succeeded) VALUES ('old', 1)"
        )
        (old,) = (await store.queue_states(conn, totals=True)).queues
        assert (old.succeeded, old.finished_last_minute) == (501, 1)
    finally:
        await conn.close()


async def test_autovacuum_of_tasks_is_paced_and_the_rollback_unpaces_it(
    empty_database_url: str,
) -> None:
    # 0024_paced_vacuum_of_tasks: a vacuum after a long-held horizon must not
    # take the workers' cores at full speed (README, A long-lived database).
    dsn = empty_database_url
    db.migrate(dsn)
    delay = (
        "SELECT option_value FROM pg_options_to_table((SELECT reloptions FROM pg_class"
        " WHERE oid = 'taskqueue.tasks'::regclass))"
        " WHERE option_name = 'autovacuum_vacuum_cost_delay'"
    )
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval(delay) == "10"
        rollback_to(dsn, "0024_paced_vacuum_of_tasks")
        assert await conn.fetchval(delay) == "0"
    finally:
        await conn.close()


async def test_each_tenant_keeps_its_sequence_across_0026_and_the_rollback_refuses_to_merge(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before 0026_keys_per_tenant a key was the queue's: one tail for both
    # tenants. After it, each tenant's next task of the key must still wait
    # for that tenant's own newest task of it.
    dsn = empty_database_url
    migrate_before(dsn, "0026", tmp_path, monkeypatch)
    conn = await asyncpg.connect(dsn)
    try:
        ids = {}
        for name, tenant, status in (
            ("a1", "a", "queued"),
            ("a2", "a", "waiting"),
            ("b1", "b", "queued"),
        ):
            ids[name] = await conn.fetchval(
                "INSERT INTO taskqueue.tasks (id, queue, type, name, tenant, status, sequence_key)"
                " VALUES ($1, 'default', 'noop', $2, $3, $4, 'k') RETURNING id",
                uuid7(),
                name,
                tenant,
                status,
            )
        # The queue-wide tail: the newest task of the key, b's.
        await conn.execute(
            "INSERT INTO taskqueue.sequences (queue, key, tail_id) VALUES ('default', 'k', $1)",
            ids["b1"],
        )
        assert db.migrate(dsn)[0] == "0026_keys_per_tenant"
        tails = await conn.fetch(
            "SELECT tenant, tail_id FROM taskqueue.sequences WHERE key = 'k' ORDER BY tenant"
        )
        assert [(r["tenant"], r["tail_id"]) for r in tails] == [("a", ids["a2"]), ("b", ids["b1"])]
        with pytest.raises(Exception, match="share a sequence key"):
            await asyncio.to_thread(rollback_to, dsn, "0026_keys_per_tenant")
    finally:
        await conn.close()
