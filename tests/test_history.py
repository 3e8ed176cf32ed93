"""The history's hash chain (migration 0016_history_chain, store/history.py,
`taskqueue verify-history`): it holds on a clean database and after
retention dropped partitions, and names each task whose trail, payload or
result was changed, moved or removed. The tampering is done as the owner
(a superuser here): the deploy roles cannot write history at all
(tests/test_write_path.py)."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from taskqueue import db, store
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask, Outcome, OutcomeKind
from taskqueue.workflows.graph import chain


async def run_tasks(tq: TaskQueue, pool: asyncpg.Pool, n: int) -> list[uuid.UUID]:
    """``n`` tasks enqueued, claimed and finished through the product: the
    first failed with an error, the others succeeded with a result."""
    tasks = await tq.enqueue_many(
        [NewTask(type="noop", payload={"i": i}, max_retries=0) for i in range(n)]
    )
    claimed = await store.claim_tasks(pool, ["default"], n, "w1", 30, types=["noop"])
    outcomes = [
        Outcome(task_id=c.id, attempt=1, kind=OutcomeKind.SUCCEEDED, result={"r": c.payload})
        if c.id != tasks[0].id
        else Outcome(task_id=c.id, attempt=1, kind=OutcomeKind.ERROR, error="boom")
        for c in claimed
    ]
    assert len(await store.complete_tasks(pool, outcomes, "w1")) == n
    return [t.id for t in tasks]


async def named(pool: asyncpg.Pool) -> dict[uuid.UUID | None, list[str]]:
    found: dict[uuid.UUID | None, list[str]] = {}
    for problem in await store.verify_history(pool):
        found.setdefault(problem.task_id, []).append(problem.problem)
    return found


async def test_the_chain_holds_on_a_clean_database_and_links_each_statement_once(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    assert await store.verify_history(pool) == []
    await run_tasks(tq, pool, 150)  # the enqueue goes by COPY
    await tq.cancel((await tq.enqueue("noop", queue="held")).id)
    assert await store.verify_history(pool) == []
    # One link per statement: the COPY's move, the claim, the completion,
    # the single enqueue and the cancel; every event sealed exactly once.
    links = await pool.fetch(
        "SELECT length(entries) / 56 AS n, written_by FROM taskqueue.history_links ORDER BY at"
    )
    assert [link["n"] for link in links] == [150, 150, 150, 1, 1]
    assert {link["written_by"] for link in links} == {await pool.fetchval("SELECT session_user")}
    sealed = await pool.fetchval(
        "SELECT count(DISTINCT x.event) FROM taskqueue.history_links l,"
        " taskqueue.history_entries(l.entries) x"
    )
    assert sealed == await pool.fetchval("SELECT count(*) FROM taskqueue.task_events") == 452
    heads = await store.chain_heads(pool)
    assert sum(h.seq for h in heads) == 5 and all(len(h.hash) in (0, 64) for h in heads)


async def test_enqueue_and_completion_hand_the_chain_their_seals_and_the_rest_are_looked_up(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await run_tasks(tq, pool, 150)  # COPY, claim, completion with results
    await tq.enqueue("noop", {"one": 1})  # the one-task statement
    flow = await tq.workflows.submit(
        chain(NewTask(type="noop", payload={"a": 1}), NewTask(type="noop", payload={"b": 2}))
    )
    # The statements that had the document in hand wrote its seal with the
    # event, and it is the seal of what the task holds.
    given = await pool.fetch(
        "SELECT e.event_type, e.seal = taskqueue.document_seal("
        "   CASE e.event_type WHEN 'task_queued' THEN t.payload ELSE t.result END) AS same"
        " FROM taskqueue.task_events e JOIN taskqueue.tasks t ON t.id = e.task_id"
        " WHERE e.seal IS NOT NULL"
    )
    assert sorted({(r["event_type"], r["same"]) for r in given}) == [
        ("task_queued", True),
        ("task_succeeded", True),
    ]
    assert len(given) == 150 + 149 + 1  # the COPY's, the successes, the single task's
    # The workflow's statement (enqueue_dependent_tasks.sql) leaves its
    # tasks' seals to a lookup; all of it verifies.
    assert len(flow.tasks) == 2
    assert await store.verify_history(pool) == []


async def test_each_tampering_names_its_task_and_only_it(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    failed, rewritten, moved, payload, result, gone, *clean = await run_tasks(tq, pool, 10)
    await pool.execute(
        "UPDATE taskqueue.task_events SET error = 'all fine' WHERE task_id = $1"
        " AND event_type = 'task_failed'",
        failed,
    )
    await pool.execute(
        "UPDATE taskqueue.task_events SET worker_id = 'w2' WHERE task_id = $1"
        " AND event_type = 'task_started'",
        rewritten,
    )
    await pool.execute(
        "UPDATE taskqueue.task_events SET at = at - interval '30 days' WHERE task_id = $1"
        " AND event_type = 'task_succeeded'",
        moved,
    )
    await pool.execute("UPDATE taskqueue.tasks SET payload = '{\"i\": 99}' WHERE id = $1", payload)
    await pool.execute("UPDATE taskqueue.tasks SET result = '{\"r\": 0}' WHERE id = $1", result)
    await pool.execute("DELETE FROM taskqueue.task_events WHERE task_id = $1", gone)
    await pool.execute("DELETE FROM taskqueue.tasks WHERE id = $1", gone)

    found = await named(pool)
    assert set(found) == {failed, rewritten, moved, payload, result, gone}
    assert found[failed] == [found[failed][0]] and "(task_failed) was changed" in found[failed][0]
    assert "(task_started) was changed" in found[rewritten][0]
    assert "(task_succeeded) was changed" in found[moved][0]
    assert found[payload] == ["its payload was changed"]
    assert found[result] == ["its result was changed"]
    assert len(found[gone]) == 3 and all("is gone" in p for p in found[gone])
    assert not set(found) & set(clean)


async def test_forged_rows_and_removed_links_are_found(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    ids = await run_tasks(tq, pool, 3)
    stranger = uuid.uuid4()
    # Written with the trigger off, as a superuser could: not in the chain.
    await pool.execute("ALTER TABLE taskqueue.task_events DISABLE TRIGGER task_events_sealed")
    await pool.execute(
        "INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt)"
        " VALUES ($1, 'task_started', 'running', 1)",
        stranger,
    )
    await pool.execute("ALTER TABLE taskqueue.task_events ENABLE TRIGGER task_events_sealed")
    found = await named(pool)
    assert list(found) == [stranger] and "is not in the chain" in found[stranger][0]
    await pool.execute("DELETE FROM taskqueue.task_events WHERE task_id = $1", stranger)

    # The newest link removed (the completion's): its events are unsealed.
    await pool.execute(
        "DELETE FROM taskqueue.history_links WHERE (lane, seq) ="
        " (SELECT lane, seq FROM taskqueue.history_links ORDER BY at DESC, seq DESC LIMIT 1)"
    )
    found = await named(pool)
    assert set(found) == set(ids)
    assert all("is not in the chain" in p for problems in found.values() for p in problems)


async def test_retention_drops_days_and_the_chain_goes_on_from_their_last_link(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    now = await store.database_now(pool)
    old_task = uuid.uuid4()
    for age in (45, 40):
        day = now - timedelta(days=age)
        await store.ensure_event_partitions(pool, 0, now=day)
        for _ in range(2):  # history of a task long gone, written back then
            await pool.execute(
                "INSERT INTO taskqueue.task_events (task_id, at, event_type, status, attempt)"
                " VALUES ($1, $2, 'task_started', 'running', 1)",
                old_task,
                day,
            )
    await run_tasks(tq, pool, 5)
    assert await store.verify_history(pool) == []

    dropped = await store.drop_event_partitions(pool, now - timedelta(days=30))
    assert len(dropped) == 2
    # Of the dropped days' links, one anchor per lane is left.
    old_links = await pool.fetchval(
        "SELECT count(*) FROM taskqueue.history_links WHERE at < $1", now - timedelta(days=30)
    )
    assert old_links == 1
    assert await store.verify_history(pool) == []
    await run_tasks(tq, pool, 2)
    assert await store.verify_history(pool) == []


async def test_verify_history_since_and_the_command(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    (victim, *_) = await run_tasks(tq, pool, 2)
    later = await store.database_now(pool)
    await run_tasks(tq, pool, 2)
    await pool.execute("UPDATE taskqueue.tasks SET payload = '[]' WHERE id = $1", victim)
    # The victim's task_queued link is older than `later`.
    assert [p.task_id for p in await store.verify_history(pool, later)] == []

    async def command(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "taskqueue.cli",
            "--database-url",
            database_url,
            "verify-history",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode is not None, err.decode()
        return proc.returncode, out.decode()

    code, out = await command("--heads")
    assert code == 1
    assert f"task {victim}: its payload was changed" in out
    assert "1 problem(s), 1 task(s) named" in out
    heads = json.loads(out.splitlines()[0])
    assert len(heads) == 16 and sum(h["seq"] for h in heads) == 6

    code, out = await command("--since", later.isoformat())
    assert (code, out.strip().splitlines()[-1]) == (
        0,
        "verify-history: the chain holds (6 links written)",
    )
    kept = tmp_path / "heads.jsonl"
    kept.write_text("[]\n" + json.dumps(heads) + "\n")  # the last line counts
    code, out = await command("--since", later.isoformat(), "--anchor", str(kept))
    assert code == 0, out
    kept.write_text(json.dumps([{**heads[0], "seq": 99}]))
    code, out = await command("--since", later.isoformat(), "--anchor", str(kept))
    assert code == 1 and "the chain was cut or rewritten" in out


@pytest.mark.parametrize(
    "rewrite",
    [
        "substr(entries, 57) || substr(entries, 1, 56)",  # two events swapped
        "substr(entries, 1, 56)",  # an event dropped from the link
    ],
)
async def test_a_rewritten_link_breaks_the_chain(
    tq: TaskQueue, pool: asyncpg.Pool, rewrite: str
) -> None:
    ids = await run_tasks(tq, pool, 2)
    await pool.execute(f"UPDATE taskqueue.history_links SET entries = {rewrite} WHERE seq = 1")
    found = await named(pool)
    assert any("does not hash to what it holds" in p for p in found[None])
    assert set(found) - {None} <= set(ids)


# What a superuser can do that the chain alone cannot show: rewrite an event
# and then every link from the first one again, digests and hashes.
REWRITE_THE_CHAIN = """
DO $$
DECLARE
    l record;
    prev bytea;
    lane_now integer := -1;
    new_entries bytea;
BEGIN
    FOR l IN SELECT * FROM taskqueue.history_links ORDER BY lane, seq LOOP
        IF l.lane <> lane_now THEN
            prev := ''::bytea;
            lane_now := l.lane;
        END IF;
        SELECT string_agg(int8send(x.event) || uuid_send(x.task)
                          || taskqueue.event_digest(e.id, e.task_id, e.at, e.event_type,
                                                    e.status::text, e.attempt, e.worker_id,
                                                    e.error, e.detail)
                          || coalesce(x.seal, '\\x00000000000000000000000000000000'::bytea),
                          ''::bytea ORDER BY x.n)
        INTO new_entries
        FROM taskqueue.history_entries(l.entries) x
        JOIN taskqueue.task_events e ON e.id = x.event;
        prev := taskqueue.history_link_hash(prev, l.lane, l.seq, l.at, l.written_by,
                                            new_entries);
        UPDATE taskqueue.history_links SET entries = new_entries, hash = prev
        WHERE lane = l.lane AND seq = l.seq;
    END LOOP;
END
$$
"""


async def test_a_whole_rewritten_chain_shows_only_against_an_external_anchor(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    (victim, *_) = await run_tasks(tq, pool, 3)
    anchor = await store.chain_heads(pool)
    await run_tasks(tq, pool, 2)  # the chain goes on after the copy was kept
    assert await store.check_anchor(pool, anchor) == []

    await pool.execute(
        "UPDATE taskqueue.task_events SET error = 'all fine' WHERE task_id = $1", victim
    )
    await pool.execute(REWRITE_THE_CHAIN)
    assert await store.verify_history(pool) == []  # the limit the README states
    problems = await store.check_anchor(pool, anchor)
    assert problems and all("differs from the anchor" in p.problem for p in problems)
    # A chain cut back below the anchor shows too.
    await pool.execute("DELETE FROM taskqueue.history_links")
    assert any("was cut" in p.problem for p in await store.check_anchor(pool, anchor))


async def test_the_chain_is_on_from_migrate_and_an_owner_can_stop_and_restart_it(
    database_url: str, pool: asyncpg.Pool, tq: TaskQueue
) -> None:
    status = await _cli(database_url, "history-chain", "status")
    assert status[0] == 0 and "on: new events are sealed" in status[1], status
    await tq.enqueue("noop")
    sealed = (await store.history_chain_state(pool)).links
    assert sealed >= 1 and await store.verify_history(pool) == []

    off = await _cli(database_url, "history-chain", "off")
    assert off[0] == 0 and "off: new events are not sealed" in off[1], off
    unsealed = await tq.enqueue("noop")
    assert (await store.history_chain_state(pool)).links == sealed
    # Events written while it was off stay unsealed, and verify-history says so.
    assert unsealed.id in await named(pool)

    on = await _cli(database_url, "history-chain", "on")
    assert on[0] == 0 and "on: new events are sealed" in on[1], on
    await tq.enqueue("noop")
    assert (await store.history_chain_state(pool)).links == sealed + 1
    assert set(await named(pool)) == {unsealed.id}


async def _cli(database_url: str, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskqueue.cli",
        "--database-url",
        database_url,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def _written_elsewhere(database_url: str, tq: TaskQueue, writers: int) -> None:
    """``writers`` transactions enqueue at once (each holds the history lane
    it took until all have written, so they take ``writers`` different
    lanes), then commit. Each its own queue: no two wait for the same
    new claim lane."""
    conns = [await db.connect(database_url) for _ in range(writers)]
    try:
        transactions = [conn.transaction() for conn in conns]
        for i, (conn, transaction) in enumerate(zip(conns, transactions, strict=True)):
            await transaction.start()
            await tq.enqueue("noop", queue=f"other{i}", connection=conn)
        for transaction in transactions:
            await transaction.commit()
    finally:
        for conn in conns:
            await conn.close()


@pytest.mark.parametrize("isolation", ["repeatable_read", "serializable"])
async def test_a_producer_whose_snapshot_is_older_than_a_lanes_head_takes_another_lane(
    database_url: str, pool: asyncpg.Pool, tq: TaskQueue, isolation: str
) -> None:
    await tq.enqueue("noop")  # its claim lane, seen by the snapshot below
    conn = await db.connect(database_url)
    try:
        async with conn.transaction(isolation=isolation):  # type: ignore[arg-type]
            await conn.fetchval("SELECT count(*) FROM taskqueue.history_links")  # its snapshot
            await _written_elsewhere(database_url, tq, 15)  # 15 of the 16 lanes move on unseen
            task = await tq.enqueue("noop", connection=conn)
        lanes = await pool.fetchval("SELECT count(DISTINCT lane) FROM taskqueue.history_links")
        assert lanes == 16
        assert task.id not in await named(pool)
        assert await store.verify_history(pool) == []
    finally:
        await conn.close()


async def test_a_producer_that_saw_no_lane_as_it_is_now_gets_a_serialization_failure(
    database_url: str, pool: asyncpg.Pool, tq: TaskQueue
) -> None:
    await tq.enqueue("noop")
    conn = await db.connect(database_url)
    try:
        with pytest.raises(asyncpg.SerializationError, match="every history lane"):
            async with conn.transaction(isolation="repeatable_read"):
                await conn.fetchval("SELECT count(*) FROM taskqueue.history_links")
                await _written_elsewhere(database_url, tq, 16)
                await tq.enqueue("noop", connection=conn)
        # Retried, as a REPEATABLE READ caller does on 40001, it goes through.
        async with conn.transaction(isolation="repeatable_read"):
            retried = await tq.enqueue("noop", connection=conn)
        assert (
            await pool.fetchval("SELECT count(*) FROM taskqueue.tasks WHERE id = $1", retried.id)
            == 1
        )
        assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == 18
        assert await store.verify_history(pool) == []
    finally:
        await conn.close()


async def test_verify_history_says_how_to_start_a_chain_that_is_off_and_empty(
    database_url: str, pool: asyncpg.Pool
) -> None:
    assert (await store.history_chain_state(pool)).links == 0  # a fresh database
    await store.set_history_chain(pool, False)
    code, said = await _cli(database_url, "verify-history")
    assert code == 2 and "history-chain on" in said, said
    await store.set_history_chain(pool, True)
    code, said = await _cli(database_url, "verify-history")
    assert code == 0 and "the chain holds" in said, said
