from __future__ import annotations

import asyncpg

from taskqueue import db


async def tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'taskqueue'"
        )
    finally:
        await conn.close()
    return {r["table_name"] for r in rows}


TABLES = {
    "tasks",
    "task_events",
    "task_history",
    "queues",
    "workers",
    "operator_actions",
    "schedules",
    "schedule_fires",
    "queue_retention",
    "queue_counts",
    "prune_marks",
}


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
