"""The history's hash chain (migrations 0016_history_chain and
0021_sealed_by_workers, store/history.py, `taskqueue verify-history`): the
sealer's ticks link every committed event exactly once, whatever the commit
order; the chain holds on a clean database and after retention dropped
partitions, and names each task whose trail, payload or result was changed,
moved or removed once it was sealed. The tampering is done as the owner (a
superuser here): the deploy roles cannot write history at all
(tests/test_write_path.py). The worker's loop is tests/test_sealer.py."""

from __future__ import annotations

import asyncio
import contextlib
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


async def seal(pool: asyncpg.Pool) -> int:
    """One tick, as a worker's (taskqueue.worker.sealer) does every second."""
    return await store.seal_history(pool, 100_000)


async def named(pool: asyncpg.Pool) -> dict[uuid.UUID | None, list[str]]:
    found: dict[uuid.UUID | None, list[str]] = {}
    for problem in await store.verify_history(pool):
        found.setdefault(problem.task_id, []).append(problem.problem)
    return found


async def test_the_chain_holds_on_a_clean_database_and_each_tick_links_what_committed_once(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    assert await store.verify_history(pool) == []
    await run_tasks(tq, pool, 150)  # the enqueue goes by COPY
    # Not sealed yet, and not named for it: no tick has come since.
    assert await store.verify_history(pool) == []
    assert await seal(pool) == 450
    assert await seal(pool) == 0  # nothing new: nothing linked, nothing moved
    await tq.cancel((await tq.enqueue("noop", queue="held")).id)
    assert await seal(pool) == 2
    assert await store.verify_history(pool) == []
    # One link per tick, in the sealer's lane; every event sealed once.
    links = await pool.fetch(
        "SELECT lane, length(entries) / 56 AS n, written_by FROM taskqueue.history_links"
        " ORDER BY seq"
    )
    assert [(link["lane"], link["n"]) for link in links] == [(16, 450), (16, 2)]
    assert {link["written_by"] for link in links} == {await pool.fetchval("SELECT session_user")}
    sealed = await pool.fetchval(
        "SELECT count(DISTINCT x.event) FROM taskqueue.history_links l,"
        " taskqueue.history_entries(l.entries) x"
    )
    assert sealed == await pool.fetchval("SELECT count(*) FROM taskqueue.task_events") == 452
    heads = await store.chain_heads(pool)
    assert sum(h.seq for h in heads) == 2 and all(len(h.hash) in (0, 64) for h in heads)


async def test_a_tick_seals_payloads_and_results_as_the_tasks_hold_them(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await run_tasks(tq, pool, 150)  # COPY, claim, completion with results
    await tq.enqueue("noop", {"one": 1})  # the one-task statement
    flow = await tq.workflows.submit(
        chain(NewTask(type="noop", payload={"a": 1}), NewTask(type="noop", payload={"b": 2}))
    )
    assert len(flow.tasks) == 2
    await seal(pool)
    given = await pool.fetch(
        "SELECT e.event_type, x.seal = taskqueue.document_seal("
        "   CASE e.event_type WHEN 'task_queued' THEN t.payload ELSE t.result END) AS same"
        " FROM taskqueue.history_links l, taskqueue.history_entries(l.entries) x"
        " JOIN taskqueue.task_events e ON e.id = x.event"
        " JOIN taskqueue.tasks t ON t.id = e.task_id"
        " WHERE x.seal IS NOT NULL"
    )
    assert sorted({(r["event_type"], r["same"]) for r in given}) == [
        ("task_queued", True),
        ("task_succeeded", True),
    ]
    assert len(given) == 150 + 149 + 1 + 2  # queued (COPY, single, workflow), succeeded
    assert await store.verify_history(pool) == []


async def test_a_transaction_that_commits_after_later_ones_is_sealed_by_the_next_tick(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    # Open first (its xid is the oldest), committed last: the order that a
    # high-water mark of ids or xids would miss, and a snapshot's list of
    # transactions in progress catches.
    conn = await db.connect(database_url)
    try:
        held = conn.transaction()
        await held.start()
        # Its own queue: the others do not wait for the claim lane it opens.
        early = await tq.enqueue("noop", {"early": True}, queue="early", connection=conn)
        later = [t.id for t in await tq.enqueue_many([NewTask(type="noop") for _ in range(3)])]
        assert await seal(pool) == 3
        assert await store.verify_history(pool) == []  # the open one is not seen yet
        await held.commit()
    finally:
        await conn.close()
    # Committed after the tick, so pending and not named...
    assert await store.verify_history(pool) == []
    # ...then sealed by the next one, and a change to it shows.
    assert await seal(pool) == 1
    entries = await pool.fetch(
        "SELECT x.task FROM taskqueue.history_links l, taskqueue.history_entries(l.entries) x"
        " ORDER BY l.seq, x.n"
    )
    assert [r["task"] for r in entries] == [*later, early.id]
    await pool.execute("UPDATE taskqueue.tasks SET payload = '{}' WHERE id = $1", early.id)
    assert await named(pool) == {early.id: ["its payload was changed"]}


async def test_a_tick_takes_about_its_limit_and_never_splits_a_transaction(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.enqueue_many([NewTask(type="noop") for _ in range(150)])  # one transaction
    for _ in range(5):
        await tq.enqueue("noop")
    # The first event past the limit belongs to the batch: it goes whole.
    assert await store.seal_history(pool, 10) == 150
    assert await store.seal_history(pool, 2) == 3  # two, and the one past the limit
    assert await store.seal_history(pool, 10) == 2
    assert await store.seal_history(pool, 10) == 0
    assert await store.verify_history(pool) == []
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.history_links") == 3


async def test_one_tick_at_a_time(tq: TaskQueue, pool: asyncpg.Pool, database_url: str) -> None:
    await tq.enqueue("noop")
    conn = await db.connect(database_url)
    try:
        async with conn.transaction():
            # A tick under way holds the sealer's row until it commits...
            await conn.fetchval("SELECT taskqueue.seal_history(100)")
            await tq.enqueue("noop")
            # ...and another session's tick passes at once instead of waiting.
            assert await asyncio.wait_for(seal(pool), 10) == 0
        assert await seal(pool) == 1
    finally:
        await conn.close()
    assert await store.verify_history(pool) == []


async def test_each_tampering_names_its_task_and_only_it(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    failed, rewritten, moved, payload, result, gone, *clean = await run_tasks(tq, pool, 10)
    await seal(pool)
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
    await seal(pool)
    stranger = uuid.uuid4()
    # Written around the sealer, as a superuser could (a row with no
    # transaction id, which no tick looks for): not in the chain.
    await pool.execute(
        "INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, xid)"
        " VALUES ($1, 'task_started', 'running', 1, NULL)",
        stranger,
    )
    await seal(pool)
    found = await named(pool)
    assert list(found) == [stranger] and "is not in the chain" in found[stranger][0]
    await pool.execute("DELETE FROM taskqueue.task_events WHERE task_id = $1", stranger)

    # The newest link removed (the tick's): its events are unsealed.
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
    await seal(pool)  # one link per day: each dropped day's events apart
    assert await store.verify_history(pool) == []

    dropped = await store.drop_event_partitions(pool, now - timedelta(days=30))
    assert len(dropped) == 2
    # Of the dropped days' links, one anchor (the lane's last) is left.
    old_links = await pool.fetchval(
        "SELECT count(*) FROM taskqueue.history_links WHERE at < $1", now - timedelta(days=30)
    )
    assert old_links == 1
    assert await store.verify_history(pool) == []
    await run_tasks(tq, pool, 2)
    await seal(pool)
    assert await store.verify_history(pool) == []


async def test_verify_history_since_and_the_command(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    (victim, *_) = await run_tasks(tq, pool, 2)
    await seal(pool)
    later = await store.database_now(pool)
    await run_tasks(tq, pool, 2)
    await pool.execute("UPDATE taskqueue.tasks SET payload = '[]' WHERE id = $1", victim)
    # The command seals the second run's events itself (no worker runs here).
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
    assert len(heads) == 17 and sum(h["seq"] for h in heads) == 2

    code, out = await command("--since", later.isoformat())
    assert (code, out.strip().splitlines()[-1]) == (
        0,
        "verify-history: the chain holds (2 links written)",
    )
    kept = tmp_path / "heads.jsonl"
    kept.write_text("[]\n" + json.dumps(heads) + "\n")  # the last line counts
    code, out = await command("--since", later.isoformat(), "--anchor", str(kept))
    assert code == 0, out
    kept.write_text(json.dumps([{**heads[16], "seq": 99}]))
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
    await seal(pool)
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
    await seal(pool)
    anchor = await store.chain_heads(pool)
    await run_tasks(tq, pool, 2)  # the chain goes on after the copy was kept
    await seal(pool)
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
    assert await seal(pool) == 1
    sealed = (await store.history_chain_state(pool)).links
    assert sealed == 1 and await store.verify_history(pool) == []

    off = await _cli(database_url, "history-chain", "off")
    assert off[0] == 0 and "off: new events are not sealed" in off[1], off
    unsealed = await tq.enqueue("noop")
    assert await seal(pool) == 0
    assert (await store.history_chain_state(pool)).links == sealed
    # Events written while it was off stay unsealed, and verify-history says so.
    assert unsealed.id in await named(pool)

    on = await _cli(database_url, "history-chain", "on")
    assert on[0] == 0 and "on: new events are sealed" in on[1], on
    await tq.enqueue("noop")
    assert await seal(pool) == 1  # what came after, not what was written while off
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


async def test_a_serializable_producer_is_not_refused_for_the_chain(
    database_url: str, pool: asyncpg.Pool, tq: TaskQueue
) -> None:
    # With the chain written by the producers' statements, a REPEATABLE READ
    # or SERIALIZABLE producer could find every lane moved on since its
    # snapshot and fail with 40001. Producers no longer write it.
    await tq.enqueue("noop")
    conn = await db.connect(database_url)
    try:
        async with conn.transaction(isolation="serializable"):
            await conn.fetchval("SELECT count(*) FROM taskqueue.history_links")  # its snapshot
            for _ in range(17):
                await tq.enqueue("noop")
                await seal(pool)  # the sealer's lane moves on, unseen by it
            task = await tq.enqueue("noop", connection=conn)
    finally:
        await conn.close()
    await seal(pool)
    assert task.id not in await named(pool)
    assert await store.verify_history(pool) == []


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


async def test_rolled_back_work_is_never_sealed_and_a_savepoint_keeps_the_rest(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    conn = await db.connect(database_url)
    try:
        async with conn.transaction():
            kept = await tq.enqueue("noop", {"kept": True}, connection=conn)
            with contextlib.suppress(RuntimeError):
                async with conn.transaction():  # a savepoint, rolled back
                    await tq.enqueue("noop", {"lost": True}, connection=conn)
                    raise RuntimeError
        aborted = conn.transaction()
        await aborted.start()
        await tq.enqueue("noop", {"aborted": True}, connection=conn)
        await aborted.rollback()
    finally:
        await conn.close()
    assert await seal(pool) == 1
    entries = await pool.fetch(
        "SELECT x.task FROM taskqueue.history_links l, taskqueue.history_entries(l.entries) x"
    )
    assert [r["task"] for r in entries] == [kept.id]
    assert await store.verify_history(pool) == []


async def test_a_tick_refuses_to_run_in_a_transaction_that_wrote_events(
    tq: TaskQueue, database_url: str
) -> None:
    conn = await db.connect(database_url)
    try:
        async with conn.transaction():
            await tq.enqueue("noop", connection=conn)
            with pytest.raises(asyncpg.RaiseError, match="wrote no events"):
                await store.seal_history(conn, 10)
    finally:
        await conn.close()


async def test_since_reads_every_link_holding_an_event_from_then_on(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.enqueue("noop")
    middle = await store.database_now(pool)
    later = await tq.enqueue("noop")
    assert await seal(pool) == 2  # one link, its events on both sides of `middle`
    assert await store.verify_history(pool, middle) == []
    await pool.execute("UPDATE taskqueue.tasks SET payload = '[]' WHERE id = $1", later.id)
    assert [p.task_id for p in await store.verify_history(pool, middle)] == [later.id]


async def test_retention_keeps_the_anchor_when_a_lanes_times_go_back(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    # A transaction that began on an older day committed after a tick had
    # sealed a newer day: the lane's link times go back. Retention still
    # leaves a chain that verifies.
    now = await store.database_now(pool)
    day = now - timedelta(days=40)
    await store.ensure_event_partitions(pool, 0, now=day)

    async def old_event() -> None:
        await pool.execute(
            "INSERT INTO taskqueue.task_events (task_id, at, event_type, status, attempt)"
            " VALUES ($1, $2, 'task_started', 'running', 1)",
            uuid.uuid4(),
            day,
        )

    await old_event()
    await seal(pool)  # link 1: the old day
    await run_tasks(tq, pool, 2)
    await seal(pool)  # link 2: today
    await old_event()
    await seal(pool)  # link 3: the old day again
    await run_tasks(tq, pool, 2)
    await seal(pool)  # link 4: today
    assert await store.verify_history(pool) == []
    assert len(await store.drop_event_partitions(pool, now - timedelta(days=30))) == 1
    kept = await pool.fetch("SELECT seq FROM taskqueue.history_links ORDER BY seq")
    assert [r["seq"] for r in kept] == [1, 2, 3, 4]  # link 1 is the anchor: nothing before it
    assert await store.verify_history(pool) == []


async def test_turning_the_chain_off_seals_what_was_written_while_it_was_on(
    database_url: str, pool: asyncpg.Pool, tq: TaskQueue
) -> None:
    before = await tq.enqueue("noop")  # no tick has come since
    off = await _cli(database_url, "history-chain", "off")
    assert off[0] == 0, off
    assert before.id not in await named(pool)
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.history_links") == 1
