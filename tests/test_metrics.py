"""Prometheus metrics: a real API process and a real worker process scraped
after a known workload, exact to the task; promtool on the expositions; the
queue gauges against the real schema; outcomes, label caps, the listener's
address and the API's auth."""

from __future__ import annotations

import asyncio
import socket
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.config import Settings
from taskqueue.errors import Permanent, Snooze
from taskqueue.models import NewTask, Outcome, OutcomeKind
from taskqueue.observability import metrics
from taskqueue.observability.metrics import (
    EnqueueCounts,
    HistoryGauges,
    LabelCap,
    QueueGauges,
    WorkerMetrics,
    build_registry,
)
from taskqueue.observability.outcomes import OUTCOMES
from taskqueue.registry import Registry, TaskContext, load_registry
from taskqueue.store.task_rows import TaskRow, new_task
from taskqueue.worker import Worker
from tests.api_helpers import LOCAL_BASE_URL, api_client, api_process, free_port
from tests.helpers import (
    FAST,
    all_in_status,
    claimed_task,
    seed_production_shape,
    wait_until,
    worker_process,
)
from tests.promtool import run_promtool

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by (name, labels), read by
    prometheus_client's own parser."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"no sample {name}{labels}"
    return samples[key]


@pytest.fixture(autouse=True)
def fresh_label_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    # The caps are per process; other tests in this one may have filled them.
    monkeypatch.setattr(metrics, "TYPES", LabelCap(100))
    monkeypatch.setattr(metrics, "QUEUES", LabelCap(100))
    monkeypatch.setattr(metrics, "TENANTS", LabelCap(100))


async def test_a_known_workload_is_counted_exactly_by_the_api_and_a_worker(
    database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    metrics_port = free_port()
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    workload: list[dict[str, Any]] = [
        *({"type": "noop"} for _ in range(50)),
        *({"type": "fail", "max_retries": 2, "payload": {"message": "no"}} for _ in range(10)),
        *(
            {"type": "sleep", "payload": {"seconds": 60}, "timeout_seconds": 0.2, "max_retries": 0}
            for _ in range(3)
        ),
        *({"type": "noop", "queue": "later", "run_at": later} for _ in range(2)),
    ]
    api = api_process(database_url, tmp_path / "api.log", metrics_cache_seconds="0")
    async with api as (base, _), httpx.AsyncClient(base_url=base) as http:
        ids = []
        for body in workload:
            created = await http.post("/api/tasks", json=body)
            assert created.status_code == 201, created.text
            ids.append(uuid.UUID(created.json()["id"]))
        worker = worker_process(
            database_url,
            tmp_path / "worker.log",
            metrics_port=str(metrics_port),
            backoff_base="0.01",
            backoff_cap="0.05",
            concurrency="10",
        )
        async with worker:
            succeeded, failed = ids[:50], ids[50:63]
            await wait_until(lambda: all_in_status(pool, succeeded, "succeeded"), timeout=60)
            await wait_until(lambda: all_in_status(pool, failed, "failed"), timeout=60)
            worker_url = f"http://127.0.0.1:{metrics_port}/metrics"
            scraped: dict[str, Samples] = {}

            async def all_recorded() -> bool:
                # The database may show an outcome before the worker has read
                # the statement's answer; its counts follow within moments.
                scraped["worker"] = parse((await http.get(worker_url)).text)
                return value(scraped["worker"], "taskqueue_completed_tasks_total") == 83

            await wait_until(all_recorded)
            worker_text = (await http.get(worker_url)).text
            api_text = (await http.get("/metrics")).text

    got = parse(worker_text)

    def finished(task_type: str, outcome: str) -> float:
        return value(
            got,
            "taskqueue_tasks_finished_total",
            queue="default",
            type=task_type,
            tenant="",
            outcome=outcome,
        )

    expected = {("noop", "succeeded"): 50, ("fail", "retried"): 20, ("fail", "failed"): 10}
    expected[("sleep", "timeout")] = 3
    for task_type in ("noop", "fail", "sleep"):
        for outcome in OUTCOMES:
            assert finished(task_type, outcome) == expected.get((task_type, outcome), 0), (
                task_type,
                outcome,
            )
    for task_type, attempts in (("noop", 50), ("fail", 30), ("sleep", 3)):
        labels = {"queue": "default", "type": task_type}
        assert value(got, "taskqueue_task_duration_seconds_count", **labels) == attempts
        assert value(got, "taskqueue_task_duration_seconds_bucket", le="+Inf", **labels) == attempts
    timeouts = {"queue": "default", "type": "sleep"}
    # Cut short at 0.2 s: none under 0.1 s, all within 1 s.
    assert value(got, "taskqueue_task_duration_seconds_bucket", le="0.1", **timeouts) == 0
    assert value(got, "taskqueue_task_duration_seconds_bucket", le="1.0", **timeouts) == 3
    assert value(got, "taskqueue_task_wait_seconds_count", queue="default", tenant="") == 83
    assert value(got, "taskqueue_claimed_tasks_total") == 83
    assert value(got, "taskqueue_completed_tasks_total") == 83
    assert value(got, "taskqueue_stale_outcomes_total") == 0
    assert value(got, "taskqueue_leases_lost_total") == 0
    assert 1 <= value(got, "taskqueue_claim_statements_total") <= 83
    assert 1 <= value(got, "taskqueue_completion_statements_total") <= 83
    assert value(got, "taskqueue_worker_capacity") == 10
    assert value(got, "taskqueue_worker_in_flight") == 0
    assert value(got, "taskqueue_reconnects_total", component="claim") == 0
    assert value(got, "process_resident_memory_bytes") > 0

    api_samples = parse(api_text)
    enqueued = "taskqueue_tasks_enqueued_total"
    assert value(api_samples, enqueued, queue="default", type="noop", tenant="") == 50
    assert value(api_samples, enqueued, queue="default", type="fail", tenant="") == 10
    assert value(api_samples, enqueued, queue="default", type="sleep", tenant="") == 3
    assert value(api_samples, enqueued, queue="later", type="noop", tenant="") == 2
    posts = {"method": "POST", "route": "/api/tasks", "status": "201"}
    assert value(api_samples, "taskqueue_http_request_duration_seconds_count", **posts) == 65
    depth = "taskqueue_queue_depth"
    for queue, state, count in (
        ("default", "due", 0),
        ("default", "running", 0),
        ("later", "due", 0),
        ("later", "scheduled", 2),
    ):
        assert value(api_samples, depth, queue=queue, state=state) == count
    assert value(api_samples, "taskqueue_queue_oldest_due_age_seconds", queue="later") == 0
    assert value(api_samples, "taskqueue_workers_live") == 1
    assert value(api_samples, "taskqueue_database_up") == 1


async def test_the_expositions_of_the_api_and_a_worker_pass_promtool(
    database_url: str, tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    tasks = [await tq.enqueue("noop"), await tq.enqueue("fail", {"message": "x"}, max_retries=0)]
    settings = Settings.from_env({}, database_url=database_url, metrics_port=0, **FAST)
    worker = Worker(settings, load_registry([]))
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.started.wait(), 15)
        await wait_until(lambda: all_in_status(pool, [tasks[0].id], "succeeded"))
        await wait_until(lambda: all_in_status(pool, [tasks[1].id], "failed"))
        assert worker.metrics_server is not None
        async with httpx.AsyncClient() as http:
            url = f"http://127.0.0.1:{worker.metrics_server.port}/metrics"
            worker_text = (await http.get(url)).text
    finally:
        worker.request_stop()
        await asyncio.wait_for(running, 60)
    async with api_client(database_url) as client:
        assert (await client.post("/api/tasks", json={"type": "noop"})).status_code == 201
        await client.get("/no/such/page")
        api_text = (await client.get("/metrics")).text
    assert "taskqueue_tasks_finished_total" in worker_text
    assert "taskqueue_queue_depth" in api_text
    for text in (worker_text, api_text):
        run_promtool("check", "metrics", stdin=text)


async def test_metrics_need_the_read_scope_when_tokens_are_configured(database_url: str) -> None:
    reader, writer = "r" * 24, "w" * 24
    async with api_client(database_url, api_tokens=f"{reader}:read,{writer}:write") as client:
        assert (await client.get("/metrics")).status_code == 401
        denied = await client.get("/metrics", headers={"Authorization": f"Bearer {writer}"})
        assert denied.status_code == 403
        allowed = await client.get("/metrics", headers={"Authorization": f"Bearer {reader}"})
        assert allowed.status_code == 200
        assert allowed.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "taskqueue_queue_depth" in allowed.text
        schema = (await client.get("/schema/openapi.json")).json()
        assert "/metrics" not in schema["paths"]
    async with api_client(database_url) as client:  # no tokens: open, on 127.0.0.1 only
        assert (await client.get("/metrics")).status_code == 200


async def test_requests_are_timed_by_route_template_and_status(database_url: str) -> None:
    async with api_client(database_url) as client:
        missing = uuid.uuid4()
        assert (await client.get(f"/api/tasks/{missing}")).status_code == 404
        assert (await client.get("/no/such/page")).status_code == 404
        assert (await client.get("/health")).status_code == 200
        got = parse((await client.get("/metrics")).text)
    count = "taskqueue_http_request_duration_seconds_count"
    assert value(got, count, method="GET", route="/api/tasks/{task_id}", status="404") == 1
    assert value(got, count, method="GET", route="unmatched", status="404") == 1
    assert value(got, count, method="GET", route="/health", status="200") == 1
    # Never an id in a label.
    assert str(missing) not in " ".join(str(key) for key in got)


async def test_queue_gauges_count_every_state_and_are_read_once_per_interval(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.enqueue_many([NewTask(type="noop", queue="a") for _ in range(3)])
    await tq.enqueue_many([NewTask(type="noop", queue="b", delay_seconds=3600) for _ in range(2)])
    await tq.enqueue("noop", queue="c")
    claimed = await store.claim_tasks(pool, ["c"], 10, "worker-1", 30, types=["noop"])
    assert len(claimed) == 1
    await store.register_worker(
        pool,
        "worker-1",
        host="h",
        pid=1,
        queues=["a"],
        types=["noop"],
        concurrency=1,
        version="0",
        heartbeat_seconds=5,
    )
    reads = 0

    async def counted() -> Any:
        nonlocal reads
        reads += 1
        return await store.queue_states(pool)

    gauges = QueueGauges(max_age=60)
    await asyncio.gather(*(gauges.refresh(counted) for _ in range(5)))
    await gauges.refresh(counted)
    assert reads == 1, "scrapes within the interval share one read"
    got = parse_families(gauges)
    for queue, due, scheduled, running in (("a", 3, 0, 0), ("b", 0, 2, 0), ("c", 0, 0, 1)):
        for state, count in (("due", due), ("scheduled", scheduled), ("running", running)):
            assert value(got, "taskqueue_queue_depth", queue=queue, state=state) == count
    assert value(got, "taskqueue_queue_oldest_due_age_seconds", queue="a") >= 0
    assert value(got, "taskqueue_queue_oldest_due_age_seconds", queue="b") == 0
    assert value(got, "taskqueue_workers_live") == 1

    # Emptied queues keep reporting zeros; a failed read says so and keeps the rest.
    await pool.execute("DELETE FROM taskqueue.tasks WHERE queue = 'a'")
    gauges.max_age = 0
    await gauges.refresh(counted)
    assert value(parse_families(gauges), "taskqueue_queue_depth", queue="a", state="due") == 0

    async def broken() -> Any:
        raise OSError("connection refused")

    await gauges.refresh(broken)
    got = parse_families(gauges)
    assert value(got, "taskqueue_database_up") == 0
    assert value(got, "taskqueue_queue_depth", queue="b", state="scheduled") == 2


def parse_families(gauges: QueueGauges) -> Samples:
    from prometheus_client import generate_latest

    return parse(generate_latest(build_registry(gauges.collect)).decode())


async def test_the_history_gauge_counts_events_waiting_in_the_default_partition(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    from prometheus_client import generate_latest

    def scraped(gauges: HistoryGauges) -> Samples:
        return parse(generate_latest(build_registry(gauges.collect)).decode())

    gauges = HistoryGauges(max_age=0)
    assert "taskqueue_events_default_partition_rows" not in str(scraped(gauges))  # not read yet
    await gauges.refresh(tq.views.default_partition_rows)
    assert value(scraped(gauges), "taskqueue_events_default_partition_rows") == 0
    # An event for a day without a partition (years ahead) lands in the default.
    await pool.execute(
        "INSERT INTO taskqueue.task_events (task_id, at, event_type, status, attempt)"
        " VALUES (gen_random_uuid(), now() + interval '3 years', 'task_queued', 'queued', 0)"
    )
    await gauges.refresh(tq.views.default_partition_rows)
    assert value(scraped(gauges), "taskqueue_events_default_partition_rows") == 1

    async def broken() -> int:
        raise OSError("connection refused")

    await gauges.refresh(broken)
    assert "taskqueue_events_default_partition_rows" not in str(scraped(gauges))


async def test_the_gauges_statement_walks_the_partial_indexes(pool: asyncpg.Pool) -> None:
    # Mostly finished tasks, a backlog, a few running: the cost must follow
    # the backlog and the running tasks, not the table's history.
    await seed_production_shape(pool, backlog=50, claimed=10)
    explained = await pool.fetch(
        f"EXPLAIN {store.query('queue_states')}", None, False, False, None, None
    )
    plan = "\n".join(r[0] for r in explained)
    assert "tasks_claim_idx" in plan
    assert "tasks_lease_idx" in plan
    assert "Seq Scan on tasks" not in plan


def test_label_values_are_capped_and_the_rest_count_as_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cap = LabelCap(2)
    assert [cap(v) for v in ("a", "b", "c", "a", "d", "b")] == [
        "a",
        "b",
        "other",
        "a",
        "other",
        "b",
    ]
    monkeypatch.setattr(metrics, "TYPES", LabelCap(2))
    worker = WorkerMetrics()
    enqueued = EnqueueCounts()
    for task_type in ("t1", "t2", "t3", "t4", "t1"):
        task = claimed_task(type=task_type)
        worker.finished(task, Outcome(task_id=task.id, attempt=1, kind=OutcomeKind.SUCCEEDED), 0.01)
        enqueued.add([new_task(TaskRow(id=task.id, queue=task.queue, type=task.type, name="",
                                       payload={}, priority=0, max_retries=0, timeout_seconds=1.0,
                                       run_at=None, delay_us=0, idempotency_key=None),
                                datetime.now(UTC))])  # fmt: skip
    for collect in (worker.collect, enqueued.collect):
        from prometheus_client import generate_latest

        got = parse(generate_latest(build_registry(collect)).decode())
        types = {dict(labels).get("type") for _, labels in got} - {None}
        assert types == {"t1", "t2", "other"}
    finished = parse(generate_latest(build_registry(worker.collect)).decode())
    succeeded = {"queue": "default", "tenant": "", "outcome": "succeeded"}
    assert value(finished, "taskqueue_tasks_finished_total", type="t1", **succeeded) == 2
    assert value(finished, "taskqueue_tasks_finished_total", type="other", **succeeded) == 2


def test_histogram_buckets_hold_values_up_to_and_including_their_bound() -> None:
    histogram = metrics.Histogram((0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 1.0, 7.0):
        histogram.observe(seconds)
    assert histogram.cumulative() == [("0.1", 2), ("1.0", 4), ("+Inf", 5)]
    assert histogram.sum == pytest.approx(8.65)


async def test_a_worker_counts_nothing_unless_metrics_are_on(database_url: str) -> None:
    quiet = Worker(Settings(database_url=database_url), Registry())
    assert quiet.metrics is None
    on = Worker(Settings(database_url=database_url, metrics_port=0), Registry())
    assert on.metrics is not None


def unusual_registry() -> tuple[Registry, asyncio.Event]:
    registry = Registry()
    hanging = asyncio.Event()

    @registry.task("snoozer")
    async def snoozer(payload: Any, ctx: TaskContext) -> None:
        if ctx.attempt == 1 and not payload.get("again"):
            raise Snooze(3600)

    @registry.task("refuser")
    async def refuser(payload: Any, ctx: TaskContext) -> None:
        raise Permanent("never")

    @registry.task("hang")
    async def hang(payload: Any, ctx: TaskContext) -> None:
        hanging.set()
        await asyncio.sleep(3600)

    return registry, hanging


async def test_a_worker_counts_snoozes_permanent_failures_cancels_and_releases(
    database_url: str, tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    registry, hanging = unusual_registry()
    unchecked = TaskQueue(pool, registry=None)
    await unchecked.enqueue("snoozer")
    refused = await unchecked.enqueue("refuser")
    cancelled = await unchecked.enqueue("hang")
    settings = Settings.from_env(
        {}, database_url=database_url, shutdown_timeout=0, metrics_port=0, **FAST
    )
    worker = Worker(settings, registry)
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.started.wait(), 15)
        await asyncio.wait_for(hanging.wait(), 15)
        await wait_until(lambda: all_in_status(pool, [refused.id], "failed"))
        await tq.cancel(cancelled.id)
        assert worker.metrics is not None

        def count(task_type: str, outcome: str) -> float:
            assert worker.metrics is not None
            got = parse(metrics_text(worker.metrics))
            labels = {"queue": "default", "type": task_type, "tenant": "", "outcome": outcome}
            return got.get(("taskqueue_tasks_finished_total", frozenset(labels.items())), 0)

        async def cancel_counted() -> bool:
            return count("hang", "cancelled") == 1

        await wait_until(cancel_counted)
        hanging.clear()
        last = await unchecked.enqueue("hang")
        await asyncio.wait_for(hanging.wait(), 15)
    finally:
        worker.request_stop()
        await asyncio.wait_for(running, 60)
    assert count("snoozer", "snoozed") == 1
    assert count("refuser", "failed") == 1
    assert count("hang", "released") == 1  # the one running at shutdown
    assert (await tq.get(last.id)).attempts == 0


def metrics_text(worker_metrics: WorkerMetrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(build_registry(worker_metrics.collect)).decode()


async def test_the_worker_listener_binds_loopback_unless_told_otherwise(
    database_url: str,
) -> None:
    settings = Settings.from_env({}, database_url=database_url, metrics_port=0, **FAST)
    worker = Worker(settings, Registry())
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.started.wait(), 15)
        server = worker.metrics_server
        assert server is not None
        assert server.host == "127.0.0.1"
        async with httpx.AsyncClient() as http:
            answer = await http.get(f"http://127.0.0.1:{server.port}/metrics")
        assert answer.status_code == 200
        assert "taskqueue_worker_capacity 10.0" in answer.text
        # Nothing answers on the machine's other addresses.
        outside = socket.gethostbyname(socket.gethostname())
        if not outside.startswith("127."):
            with pytest.raises(OSError), socket.create_connection((outside, server.port), 2):
                pass
    finally:
        worker.request_stop()
        await asyncio.wait_for(running, 60)
    assert Settings().metrics_host == "127.0.0.1"


async def test_a_taken_metrics_port_stops_the_worker_with_a_clear_error(
    database_url: str, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        log = tmp_path / "worker.log"
        async with worker_process(database_url, log, metrics_port=str(port)) as proc:
            assert await asyncio.wait_for(proc.wait(), 30) == 2
    assert f"cannot serve metrics on 127.0.0.1:{port}" in log.read_text()


async def test_taskqueue_run_serves_the_workers_numbers_on_the_api(database_url: str) -> None:
    worker_metrics = WorkerMetrics()
    task = claimed_task()
    worker_metrics.finished(
        task, Outcome(task_id=task.id, attempt=1, kind=OutcomeKind.SUCCEEDED), 0.2
    )
    from litestar.testing import AsyncTestClient

    from taskqueue.app import create_app

    app = create_app(Settings(database_url=database_url), metrics_also=[worker_metrics.collect])
    async with AsyncTestClient(app, base_url=LOCAL_BASE_URL) as client:
        got = parse((await client.get("/metrics")).text)
    labels = {"queue": "default", "type": "noop", "tenant": "", "outcome": "succeeded"}
    assert value(got, "taskqueue_tasks_finished_total", **labels) == 1


def test_the_wait_is_measured_from_when_the_task_was_due() -> None:
    worker_metrics = WorkerMetrics()
    now = datetime.now(UTC)
    worker_metrics.claimed(
        [
            claimed_task(run_at=now - timedelta(seconds=2)),
            claimed_task(run_at=now + timedelta(seconds=5)),  # a clock ahead: never negative
        ]
    )
    got = parse(metrics_text(worker_metrics))
    assert value(got, "taskqueue_task_wait_seconds_count", queue="default", tenant="") == 2
    assert (
        value(got, "taskqueue_task_wait_seconds_bucket", queue="default", tenant="", le="0.001")
        == 1
    )
    assert 2.0 <= value(got, "taskqueue_task_wait_seconds_sum", queue="default", tenant="") < 3.0


async def test_a_producer_exports_what_it_enqueues_on_its_own_registry(tq: TaskQueue) -> None:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    metrics.register(registry)
    labels = {"queue": "reports", "type": "noop", "tenant": ""}
    before = registry.get_sample_value("taskqueue_tasks_enqueued_total", labels) or 0
    await tq.enqueue_many([NewTask(type="noop", queue="reports") for _ in range(3)])
    await tq.enqueue("noop", queue="reports", idempotency_key="once")
    await tq.enqueue("noop", queue="reports", idempotency_key="once")  # not created again
    after = registry.get_sample_value("taskqueue_tasks_enqueued_total", labels)
    assert after == before + 4


async def test_enqueued_tasks_carry_a_capped_tenant_label(
    tq: TaskQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    monkeypatch.setattr(metrics, "TENANTS", LabelCap(2))
    monkeypatch.setattr(metrics, "ENQUEUED", metrics.EnqueueCounts())
    monkeypatch.setattr("taskqueue.enqueue.ENQUEUED", metrics.ENQUEUED)
    registry = CollectorRegistry()
    metrics.register(registry)
    for tenant in ("a", "b", "c", "d", None):
        await tq.enqueue("noop", queue="t", tenant=tenant)
    got = parse(generate_latest(registry).decode())
    enqueued = "taskqueue_tasks_enqueued_total"
    for tenant, count in (("a", 1), ("b", 1), ("other", 2), ("", 1)):
        assert value(got, enqueued, queue="t", type="noop", tenant=tenant) == count


def test_a_workers_outcomes_and_waits_carry_a_capped_tenant_label(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics, "TENANTS", LabelCap(2))
    worker_metrics = WorkerMetrics()
    tasks = [claimed_task(tenant=tenant) for tenant in ("a", "a", "b", "c", "d", None)]
    worker_metrics.claimed(tasks)
    for task in tasks:
        succeeded = Outcome(task_id=task.id, attempt=1, kind=OutcomeKind.SUCCEEDED)
        worker_metrics.finished(task, succeeded, 0.01)
    got = parse(metrics_text(worker_metrics))
    finished, waited = "taskqueue_tasks_finished_total", "taskqueue_task_wait_seconds_count"
    for tenant, count in (("a", 2), ("b", 1), ("other", 2), ("", 1)):
        labels = {"queue": "default", "tenant": tenant}
        assert value(got, finished, type="noop", outcome="succeeded", **labels) == count
        assert value(got, waited, **labels) == count
    # Durations stay per (queue, type): one series for every tenant.
    duration = "taskqueue_task_duration_seconds_count"
    assert value(got, duration, queue="default", type="noop") == len(tasks)
    # Tenants beyond the cap add nothing to what the worker keeps: a worker
    # serving a tenant per customer does not grow.
    more = [claimed_task(tenant=f"customer-{n}") for n in range(50)]
    worker_metrics.claimed(more)
    for task in more:
        succeeded = Outcome(task_id=task.id, attempt=1, kind=OutcomeKind.SUCCEEDED)
        worker_metrics.finished(task, succeeded, 0.01)
    assert len(worker_metrics._series) == len(worker_metrics._waits) == 3  # a, b, none
