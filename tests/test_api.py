"""The REST API in-process (Litestar's test client) against real PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import jwt
import pytest

from taskqueue.client import TaskQueue
from taskqueue.config import ConfigError, Settings
from taskqueue.errors import InvalidTask
from taskqueue.http.auth import Authenticator, check_binding
from tests.api_helpers import api_client, api_process
from tests.helpers import all_in_status, event_types, running_worker, wait_until

WRITER = "writer-token-0123456789"
READER = "reader-token-0123456789"
TOKENS = f"{WRITER}:read+write,{READER}:read"
JWT_SECRET = "jwt-secret-for-tests-0123456789abcdef"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_create_returns_201_after_the_row_and_event_are_committed(
    database_url: str, pool: asyncpg.Pool
) -> None:
    async with api_client(database_url) as client:
        response = await client.post(
            "/api/tasks",
            json={"name": "Welcome email", "type": "noop", "priority": 5, "payload": {"to": "x"}},
        )
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "queued"
    assert (body["name"], body["priority"], body["retry_count"], body["max_retries"]) == (
        "Welcome email",
        5,
        0,
        3,
    )
    task_id = uuid.UUID(body["id"])
    assert await event_types(pool, task_id) == ["task_queued"]


async def test_every_read_endpoint_and_the_state_changes(database_url: str) -> None:
    async with api_client(database_url) as client:
        created = (await client.post("/api/tasks", json={"type": "noop"})).json()
        task_id = created["id"]
        got = await client.get(f"/api/tasks/{task_id}")
        assert got.status_code == 200
        assert got.json()["id"] == task_id
        history = (await client.get(f"/api/tasks/{task_id}/history")).json()
        assert [(e["event_type"], e["status"], e["worker_id"]) for e in history] == [
            ("task_queued", "queued", None)
        ]
        assert "created_at" in history[0]

        retry_queued = await client.post(f"/api/tasks/{task_id}/retry")
        assert retry_queued.status_code == 409
        assert retry_queued.json()["error"] == "conflict"
        cancelled = await client.post(f"/api/tasks/{task_id}/cancel")
        assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
        again = await client.post(f"/api/tasks/{task_id}/cancel")
        assert again.status_code == 409
        assert "it is cancelled" in again.json()["message"]
        retried = await client.post(f"/api/tasks/{task_id}/retry")
        assert (retried.status_code, retried.json()["status"]) == (200, "queued")

        stats = (await client.get("/api/stats")).json()
        assert (stats["total_tasks"], stats["queued_tasks"]) == (1, 1)
        assert stats["queues"][0]["queue"] == "default"
        assert {"avg_retry_count", "tasks_with_retries", "failed_tasks"} <= set(stats)

        health = await client.get("/health")
        assert health.json()["status"] == "healthy"
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "database": "connected", "migrations": "current"}


async def test_unknown_ids_are_404_never_500(database_url: str) -> None:
    async with api_client(database_url) as client:
        for path in (
            f"/api/tasks/{uuid.uuid4()}",
            f"/api/tasks/{uuid.uuid4()}/history",
            "/api/tasks/not-a-uuid",
            "/api/tasks/not-a-uuid/history",
        ):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"] == "not_found"
        for action in ("cancel", "retry"):
            response = await client.post(f"/api/tasks/{uuid.uuid4()}/{action}")
            assert response.status_code == 404
            assert (await client.post(f"/api/tasks/1234/{action}")).status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b'{"type": "noop", "priority": 5000}', 422, "priority"),
        (b'{"type": "noop", "priority": "5"}', 422, "priority"),
        (b'{"type": "noop", "max_retries": -1}', 422, "max_retries"),
        (b'{"type": "noop", "timeout_seconds": 0}', 422, "timeout_seconds"),
        (b'{"type": "noop", "name": "' + b"n" * 201 + b'"}', 422, "name"),
        (b'{"type": "noop", "surprise": 1}', 422, "surprise"),
        (b'{"payload": {}}', 422, "type"),
        (b'{"type": "sleep", "payload": {"seconds": "long"}}', 422, "payload.seconds"),
        (b'{"type": "webhook", "payload": {}}', 422, "payload.url"),
        (b'{"type": "noop", "run_at": "yesterday"}', 422, "run_at"),
        (b"[1, 2]", 422, "body"),
        (b'{"type": "noop",', 400, None),
        (b"not json", 400, None),
    ],
)
async def test_bad_input_gets_a_clear_error_naming_the_field(
    database_url: str, pool: asyncpg.Pool, body: bytes, status: int, field: str | None
) -> None:
    async with api_client(database_url) as client:
        response = await client.post(
            "/api/tasks", content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == status, response.text
    error = response.json()
    assert error["status"] == status
    assert error.get("field") == field
    if field:
        assert field in error["message"]
    assert "Traceback" not in response.text
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == 0


async def test_unknown_type_lists_the_known_types(database_url: str) -> None:
    async with api_client(database_url) as client:
        response = await client.post("/api/tasks", json={"type": "send_fax"})
    assert response.status_code == 422
    error = response.json()
    assert (error["error"], error["field"]) == ("unknown_task_type", "type")
    assert error["known_types"] == ["fail", "noop", "sleep", "taskqueue.callback", "webhook"]


async def test_body_over_the_limit_is_413(database_url: str) -> None:
    async with api_client(database_url, max_body_bytes=1024) as client:
        big = {"type": "noop", "payload": {"blob": "x" * 2000}}
        response = await client.post("/api/tasks", json=big)
        assert response.status_code == 413
        assert response.json()["error"] == "payload_too_large"
        assert (await client.post("/api/tasks", json={"type": "noop"})).status_code == 201


async def test_run_at_in_the_past_runs_now(database_url: str, pool: asyncpg.Pool) -> None:
    async with api_client(database_url) as client:
        response = await client.post(
            "/api/tasks", json={"type": "noop", "run_at": "2001-01-01T00:00:00Z"}
        )
    assert response.status_code == 201
    task_id = uuid.UUID(response.json()["id"])
    async with running_worker(database_url):
        await wait_until(lambda: all_in_status(pool, [task_id], "succeeded"))


async def test_idempotency_key_header_returns_the_original_with_200(
    database_url: str, pool: asyncpg.Pool
) -> None:
    async with api_client(database_url) as client:
        first = await client.post(
            "/api/tasks", json={"type": "noop"}, headers={"Idempotency-Key": "order-1"}
        )
        repeat = await client.post(
            "/api/tasks", json={"type": "noop"}, headers={"Idempotency-Key": "order-1"}
        )
        by_field = await client.post(
            "/api/tasks", json={"type": "noop", "idempotency_key": "order-1"}
        )
        mismatch = await client.post(
            "/api/tasks",
            json={"type": "noop", "idempotency_key": "other"},
            headers={"Idempotency-Key": "order-1"},
        )
    assert (first.status_code, repeat.status_code, by_field.status_code) == (201, 200, 200)
    assert first.json()["id"] == repeat.json()["id"] == by_field.json()["id"]
    assert (mismatch.status_code, mismatch.json()["field"]) == (422, "idempotency_key")
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == 1


async def test_a_hundred_identical_requests_at_once_make_one_task(
    database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    async with (
        api_process(database_url, tmp_path / "api.log") as (base, _),
        httpx.AsyncClient(base_url=base, limits=httpx.Limits(max_connections=100)) as client,
    ):
        responses = await asyncio.gather(
            *(
                client.post("/api/tasks", json={"type": "noop"}, headers={"Idempotency-Key": "k"})
                for _ in range(100)
            )
        )
    assert sorted(r.status_code for r in responses) == [200] * 99 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == 1
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.task_events") == 1


async def test_concurrent_single_creates_share_statements(
    database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    async with (
        api_process(database_url, tmp_path / "api.log") as (base, _),
        httpx.AsyncClient(base_url=base, limits=httpx.Limits(max_connections=64)) as client,
    ):
        responses = await asyncio.gather(
            *(client.post("/api/tasks", json={"type": "noop", "name": f"t{i}"}) for i in range(200))
        )
    assert [r.status_code for r in responses] == [201] * 200
    ids = [uuid.UUID(r.json()["id"]) for r in responses]
    assert await all_in_status(pool, ids, "queued")
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.task_events") == 200
    # Rows of one statement share its transaction's now(): fewer distinct
    # created_at values than requests means requests shared commits.
    statements = await pool.fetchval("SELECT count(DISTINCT created_at) FROM taskqueue.tasks")
    assert statements < 200


async def test_batch_creates_in_one_request_and_checks_every_task(
    database_url: str, pool: asyncpg.Pool
) -> None:
    async with api_client(database_url, max_batch_size=50) as client:
        ok = await client.post(
            "/api/tasks/batch",
            json={"tasks": [{"type": "noop", "name": f"n{i}"} for i in range(50)]},
        )
        assert ok.status_code == 201
        assert [t["name"] for t in ok.json()] == [f"n{i}" for i in range(50)]
        too_many = await client.post("/api/tasks/batch", json={"tasks": [{"type": "noop"}] * 51})
        assert (too_many.status_code, too_many.json()["field"]) == (422, "tasks")
        bad = await client.post(
            "/api/tasks/batch",
            json={"tasks": [{"type": "noop"}, {"type": "noop", "priority": 1e9}]},
        )
        assert (bad.status_code, bad.json()["field"]) == (422, "tasks[1].priority")
        empty = await client.post("/api/tasks/batch", json={"tasks": []})
        assert empty.status_code == 422
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == 50


async def test_list_pages_every_row_exactly_once_while_inserts_happen(
    database_url: str,
) -> None:
    async with api_client(database_url) as client:
        await client.post("/api/tasks/batch", json={"tasks": [{"type": "noop"}] * 45})
        await client.post("/api/tasks/batch", json={"tasks": [{"type": "sleep"}] * 5})
        original = {t["id"] for t in (await client.get("/api/tasks?limit=1000")).json()["tasks"]}
        seen: list[str] = []
        cursor = None
        while True:
            query = "/api/tasks?limit=7" + (f"&cursor={cursor}" if cursor else "")
            page = (await client.get(query)).json()
            seen.extend(t["id"] for t in page["tasks"])
            await client.post("/api/tasks", json={"type": "noop"})  # concurrent producer
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert set(seen) == original
        assert len(seen) == len(original) == 50
        filtered = (await client.get("/api/tasks?type=sleep&status=queued&queue=default")).json()
        assert len(filtered["tasks"]) == 5
        bad = await client.get("/api/tasks?status=bogus")
        assert (bad.status_code, bad.json()["field"]) == (422, "status")
        assert (await client.get("/api/tasks?limit=0")).status_code == 422
        assert (await client.get("/api/tasks?cursor=zzz")).status_code == 422
        later = (await client.get("/api/tasks?created_after=2999-01-01T00:00:00Z")).json()
        assert later["tasks"] == []


async def test_auth_tokens_and_scopes(database_url: str) -> None:
    async with api_client(database_url, api_tokens=TOKENS) as client:
        anonymous = await client.post("/api/tasks", json={"type": "noop"})
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        wrong = await client.get("/api/tasks", headers=bearer("not-a-real-token-at-all"))
        assert wrong.status_code == 401
        reader_post = await client.post("/api/tasks", json={"type": "noop"}, headers=bearer(READER))
        assert (reader_post.status_code, reader_post.json()["error"]) == (403, "forbidden")
        created = await client.post("/api/tasks", json={"type": "noop"}, headers=bearer(WRITER))
        assert created.status_code == 201
        listed = await client.get("/api/tasks", headers=bearer(READER))
        assert listed.status_code == 200
        assert (await client.get("/api/stats")).status_code == 401
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/ready")).status_code == 200


async def test_jwt_with_expiry_and_scopes(database_url: str) -> None:
    def token(scope: str, expires_in: float) -> str:
        claims = {"sub": "svc", "scope": scope, "exp": int(time.time() + expires_in)}
        return jwt.encode(claims, JWT_SECRET, algorithm="HS256")

    async with api_client(database_url, jwt_secret=JWT_SECRET) as client:
        ok = await client.post(
            "/api/tasks", json={"type": "noop"}, headers=bearer(token("read write", 60))
        )
        assert ok.status_code == 201
        read_only = await client.post(
            "/api/tasks", json={"type": "noop"}, headers=bearer(token("read", 60))
        )
        assert read_only.status_code == 403
        expired = await client.get("/api/tasks", headers=bearer(token("read", -60)))
        assert expired.status_code == 401
        forged = jwt.encode({"scope": "read", "exp": time.time() + 60}, "x" * 32, "HS256")
        assert (await client.get("/api/tasks", headers=bearer(forged))).status_code == 401
        no_expiry = jwt.encode({"scope": "read"}, JWT_SECRET, algorithm="HS256")
        assert (await client.get("/api/tasks", headers=bearer(no_expiry))).status_code == 401


def test_without_tokens_the_api_binds_only_to_loopback() -> None:
    open_settings = Settings(database_url="postgresql://x/y", host="0.0.0.0")
    with pytest.raises(ConfigError, match=r"refusing to bind 0\.0\.0\.0"):
        check_binding(open_settings, Authenticator.from_settings(open_settings))
    guarded = Settings(database_url="postgresql://x/y", host="0.0.0.0", api_tokens=TOKENS)
    check_binding(guarded, Authenticator.from_settings(guarded))
    local = Settings(database_url="postgresql://x/y")
    check_binding(local, Authenticator.from_settings(local))
    with pytest.raises(ConfigError, match="16 characters"):
        Authenticator.from_settings(Settings(api_tokens="short"))


async def test_logs_carry_no_token_and_no_payload(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_payload = "payload-secret-7f3a"
    async with api_client(database_url, api_tokens=TOKENS) as client:
        await client.post(
            "/api/tasks",
            json={"type": "noop", "payload": {"p": secret_payload}},
            headers=bearer(WRITER),
        )
        await client.post("/api/tasks", json={"type": "nope", "payload": {"p": secret_payload}})
        await client.get("/api/tasks", headers=bearer("wrong-token-" + secret_payload))
    assert caplog.records  # something was logged, and none of it is secret
    assert WRITER not in caplog.text
    assert secret_payload not in caplog.text
    assert database_url not in caplog.text


async def test_openapi_documents_every_operation_error_and_the_auth_scheme(
    database_url: str,
) -> None:
    async with api_client(database_url) as client:
        spec = (await client.get("/schema/openapi.json")).json()
    operations = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "patch", "delete")
    }
    assert operations == {
        ("POST", "/api/tasks"),
        ("GET", "/api/tasks"),
        ("POST", "/api/tasks/batch"),
        ("GET", "/api/tasks/{task_id}"),
        ("GET", "/api/tasks/{task_id}/history"),
        ("GET", "/api/tasks/{task_id}/result"),
        ("POST", "/api/tasks/{task_id}/cancel"),
        ("POST", "/api/tasks/{task_id}/retry"),
        ("POST", "/api/tasks/retry"),
        ("POST", "/api/tasks/cancel"),
        ("POST", "/api/tasks/delete"),
        ("GET", "/api/queues"),
        ("GET", "/api/queues/{name}"),
        ("PATCH", "/api/queues/{name}"),
        ("POST", "/api/queues/{name}/pause"),
        ("POST", "/api/queues/{name}/resume"),
        ("GET", "/api/workers"),
        ("GET", "/api/failures"),
        ("GET", "/api/actions"),
        ("GET", "/api/events"),
        ("GET", "/api/stats"),
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/api/schedules"),
        ("POST", "/api/schedules"),
        ("GET", "/api/schedules/{name}"),
        ("PATCH", "/api/schedules/{name}"),
        ("DELETE", "/api/schedules/{name}"),
        ("POST", "/api/schedules/{name}/pause"),
        ("POST", "/api/schedules/{name}/resume"),
        ("POST", "/api/schedules/{name}/trigger"),
        ("POST", "/api/workflows"),
        ("GET", "/api/workflows"),
        ("GET", "/api/workflows/{workflow_id}"),
        ("GET", "/api/tenants"),
        ("GET", "/api/tenants/{name}"),
        ("PATCH", "/api/tenants/{name}"),
    }
    assert spec["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    create = spec["paths"]["/api/tasks"]["post"]
    assert create["security"] == [{"BearerToken": []}]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert {"type", "payload", "priority", "run_at"} <= set(body["properties"])
    assert {"201", "400", "401", "403", "413", "422", "503"} <= set(create["responses"])
    assert "ErrorBody" in spec["components"]["schemas"]


# -- one bad request never fails another; no 500 from input -----------------------

DEEP = "[" * 2000 + "]" * 2000
POISONS: list[tuple[str, bytes, str | None]] = [
    ("NUL in a payload string", b'{"type": "noop", "payload": {"s": "bad\\u0000"}}', "payload"),
    ("NUL in a payload key", b'{"type": "noop", "payload": {"k\\u0000": 1}}', "payload"),
    ("NUL in name", b'{"type": "noop", "name": "bad\\u0000"}', "name"),
    ("NUL in queue", b'{"type": "noop", "queue": "q\\u0000"}', "queue"),
    (
        "NUL in idempotency_key",
        b'{"type": "noop", "idempotency_key": "k\\u0000"}',
        "idempotency_key",
    ),
    ("lone surrogate", b'{"type": "noop", "payload": {"s": "\\ud800"}}', None),
    ("run_at year 0", b'{"type": "noop", "run_at": "0001-01-01T00:00:00+14:00"}', "run_at"),
    ("run_at year 10000", b'{"type": "noop", "run_at": "9999-12-31T23:59:59-14:00"}', "run_at"),
    ("deep nesting", b'{"type": "noop", "payload": {"d": ' + DEEP.encode() + b"}}", "payload"),
    (
        "nesting past 64",
        b'{"type": "noop", "payload": {"d": ' + b"[" * 70 + b"]" * 70 + b"}}",
        "payload",
    ),
    ("huge number", b'{"type": "noop", "payload": {"n": 1e400}}', "payload"),
]


async def test_poisoned_requests_never_fail_valid_ones_sharing_their_statement(
    database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    async with (
        api_process(database_url, tmp_path / "api.log") as (base, _),
        httpx.AsyncClient(base_url=base, limits=httpx.Limits(max_connections=64)) as client,
    ):

        async def send(i: int) -> tuple[int, httpx.Response]:
            if i % 10 == 9:
                _, body, _ = POISONS[(i // 10) % len(POISONS)]
            else:
                body = f'{{"type": "noop", "name": "valid-{i}", "payload": {{"i": {i}}}}}'.encode()
            response = await client.post(
                "/api/tasks", content=body, headers={"Content-Type": "application/json"}
            )
            return i, response

        results = await asyncio.gather(*(send(i) for i in range(200)))
    valid = [(i, r) for i, r in results if i % 10 != 9]
    poisoned = [(i, r) for i, r in results if i % 10 == 9]
    assert [r.status_code for _, r in valid] == [201] * 180
    for i, response in poisoned:
        label, _, field = POISONS[(i // 10) % len(POISONS)]
        assert 400 <= response.status_code < 500, (label, response.text)
        assert response.json().get("field") == field, (label, response.text)
    assert all(r.status_code < 500 for _, r in results)
    names = {r["name"] for r in await pool.fetch("SELECT name FROM taskqueue.tasks")}
    assert names == {f"valid-{i}" for i, _ in valid}
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.task_events") == 180


@pytest.mark.parametrize(("label", "body", "field"), POISONS)
async def test_each_poison_is_a_4xx_naming_the_field_alone_and_in_a_batch(
    database_url: str, pool: asyncpg.Pool, label: str, body: bytes, field: str | None
) -> None:
    task = body.decode()
    batch = f'{{"tasks": [{{"type": "noop"}}, {task}]}}'.encode()
    async with api_client(database_url) as client:
        headers = {"Content-Type": "application/json"}
        alone = await client.post("/api/tasks", content=body, headers=headers)
        together = await client.post("/api/tasks/batch", content=batch, headers=headers)
    for response in (alone, together):
        assert 400 <= response.status_code < 500, (label, response.text)
        assert "Traceback" not in response.text
    assert alone.json().get("field") == field
    if field is not None:
        assert together.json()["field"] == f"tasks[1].{field}", together.text
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == 0


@pytest.mark.parametrize(
    "nesting", [DEEP.encode(), b"[" * 70 + b"]" * 70], ids=["deep nesting", "nesting past 64"]
)
async def test_a_schedule_nested_too_deep_is_refused_as_a_task_is(
    database_url: str, pool: asyncpg.Pool, nesting: bytes
) -> None:
    payload = b'"payload": {"d": ' + nesting + b"}"
    task = b'{"type": "noop", ' + payload + b"}"
    schedule = b'{"name": "deep", "type": "noop", "every_seconds": 60, ' + payload + b"}"
    headers = {"Content-Type": "application/json"}
    async with api_client(database_url) as client:
        refused_task = await client.post("/api/tasks", content=task, headers=headers)
        created = await client.post("/api/schedules", content=schedule, headers=headers)
        await client.post("/api/schedules", json={"name": "ok", "type": "noop", "cron": "@daily"})
        changed = await client.patch(
            "/api/schedules/ok", content=b"{" + payload + b"}", headers=headers
        )
    assert 400 <= refused_task.status_code < 500
    assert refused_task.json()["field"] == "payload"
    for response in (created, changed):
        assert response.status_code == refused_task.status_code, response.text
        assert response.json() == refused_task.json()
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.schedules") == 1


async def test_queries_with_bad_values_are_422_naming_the_parameter(database_url: str) -> None:
    async with api_client(database_url) as client:
        for query, field in [
            ("queue=%00", "queue"),
            ("type=%00abc", "type"),
            ("queue=a%20b", "queue"),
            ("created_after=2020-01-01T00:00:00", "created_after"),
            ("created_before=0001-01-01T00:00:00Z", "created_before"),
            ("status=bogus", "status"),
            ("stauts=queued", "stauts"),
            ("limit=50&Queue=x&extra=1", "Queue"),
        ]:
            response = await client.get(f"/api/tasks?{query}")
            assert response.status_code == 422, (query, response.text)
            assert response.json()["field"] == field, (query, response.text)
            assert field in response.json()["message"]
        unknown = await client.get("/api/tasks?stauts=queued")
        assert "status, queue, type" in unknown.json()["message"]
        for path in ("/api/stats?x=1", f"/api/tasks/{uuid.uuid4()}?verbose=1"):
            response = await client.get(path)
            assert (response.status_code, response.json()["field"]) == (
                422,
                "x" if "x=" in path else "verbose",
            ), path
        # A probe may add a cache-buster.
        assert (await client.get("/health?x=1")).status_code == 200
        odd = await client.get("/api/tasks?created_after=0001-01-01Z")
        assert 400 <= odd.status_code < 500


async def test_run_at_in_the_past_is_stored_as_now_not_as_given(
    database_url: str, pool: asyncpg.Pool
) -> None:
    async with api_client(database_url) as client:
        response = await client.post(
            "/api/tasks", json={"type": "noop", "run_at": "1970-01-01T00:00:00Z"}
        )
    assert response.status_code == 201
    row = await pool.fetchrow("SELECT run_at, created_at FROM taskqueue.tasks")
    assert row is not None and row["run_at"] == row["created_at"]
    assert response.json()["run_at"] == response.json()["created_at"]


async def test_405_says_which_methods_are_allowed(database_url: str) -> None:
    async with api_client(database_url) as client:
        response = await client.delete("/api/tasks")
        assert response.status_code == 405
        assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
        assert response.json()["error"] == "method_not_allowed"


async def test_bodies_must_be_json_and_cross_site_requests_are_refused(
    database_url: str, pool: asyncpg.Pool
) -> None:
    body = b'{"type": "webhook", "payload": {"url": "http://127.0.0.1:9/"}}'
    async with api_client(database_url) as client:
        for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
            plain: dict[str, str] = {} if content_type is None else {"Content-Type": content_type}
            response = await client.post("/api/tasks", content=body, headers=plain)
            assert response.status_code == 415, (content_type, response.text)
            assert response.json()["error"] == "unsupported_media_type"
        for headers in (
            {"Origin": "http://evil.example"},
            {"Origin": "null"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site", "Origin": "http://localhost:3000"},
        ):
            response = await client.post(
                "/api/tasks", content=body, headers={"Content-Type": "application/json", **headers}
            )
            assert (response.status_code, response.json()["error"]) == (403, "forbidden"), headers
        task_id = uuid.uuid4()
        cancel = await client.post(
            f"/api/tasks/{task_id}/cancel", headers={"Origin": "http://evil.example"}
        )
        assert cancel.status_code == 403
        assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == 0
        same = await client.post(
            "/api/tasks",
            json={"type": "noop"},
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Sec-Fetch-Site": "same-origin",
            },
        )
        assert same.status_code == 201
        assert (await client.post(f"/api/tasks/{task_id}/cancel")).status_code == 404


async def test_batch_idempotency_key_returns_the_original_tasks(
    database_url: str, pool: asyncpg.Pool
) -> None:
    batch = {"tasks": [{"type": "noop", "name": "a"}, {"type": "noop", "name": "b"}]}
    async with api_client(database_url) as client:
        first = await client.post(
            "/api/tasks/batch", json=batch, headers={"Idempotency-Key": "b-1"}
        )
        again = await client.post(
            "/api/tasks/batch", json=batch, headers={"Idempotency-Key": "b-1"}
        )
        assert (first.status_code, again.status_code) == (201, 200)
        assert [t["id"] for t in first.json()] == [t["id"] for t in again.json()]
        assert [t["created"] for t in first.json()] == [True, True]
        assert [t["created"] for t in again.json()] == [False, False]
        assert [t["idempotency_key"] for t in first.json()] == ["b-1/0", "b-1/1"]

        longer = {"tasks": [*batch["tasks"], {"type": "noop", "name": "c"}]}
        grown = await client.post(
            "/api/tasks/batch", json=longer, headers={"Idempotency-Key": "b-1"}
        )
        assert grown.status_code == 201
        assert [t["created"] for t in grown.json()] == [False, False, True]

        per_task = {"tasks": [{"type": "noop", "idempotency_key": "own"}, {"type": "noop"}]}
        one = await client.post("/api/tasks/batch", json=per_task)
        two = await client.post("/api/tasks/batch", json=per_task)
        assert (one.status_code, two.status_code) == (201, 201)
        assert [t["created"] for t in two.json()] == [False, True]

        both = await client.post(
            "/api/tasks/batch", json=per_task, headers={"Idempotency-Key": "x"}
        )
        assert (both.status_code, both.json()["field"]) == (422, "tasks[0].idempotency_key")
        too_long = await client.post(
            "/api/tasks/batch", json=batch, headers={"Idempotency-Key": "k" * 200}
        )
        assert (too_long.status_code, too_long.json()["field"]) == (422, "idempotency_key")
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == 3 + 3


async def test_jwt_secret_length_audience_issuer_and_malformed_claims(database_url: str) -> None:
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        Authenticator.from_settings(Settings(jwt_secret="x"))
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        Authenticator.from_settings(Settings(jwt_secret="s" * 31))

    def token(**claims: object) -> dict[str, str]:
        claims = {"scope": "read write", "exp": int(time.time() + 60), **claims}
        return bearer(jwt.encode(claims, JWT_SECRET, algorithm="HS256"))

    async with api_client(
        database_url, jwt_secret=JWT_SECRET, jwt_audience="taskqueue", jwt_issuer="https://idp"
    ) as client:
        good = token(aud="taskqueue", iss="https://idp")
        assert (await client.get("/api/tasks", headers=good)).status_code == 200
        for bad in (
            token(iss="https://idp"),  # no audience
            token(aud="other", iss="https://idp"),
            token(aud="taskqueue"),  # no issuer
            token(aud="taskqueue", iss="https://evil"),
            token(aud="taskqueue", iss="https://idp", scope=5),
            token(aud="taskqueue", iss="https://idp", scope=None, scopes=[1, 2]),
            token(aud="taskqueue", iss="https://idp", scope={"read": True}),
            token(aud="taskqueue", iss="https://idp", exp="soon"),
        ):
            response = await client.get("/api/tasks", headers=bad)
            assert response.status_code == 401, response.text
            assert response.json()["error"] == "unauthorized"
    async with api_client(database_url, jwt_secret=JWT_SECRET) as client:
        assert (await client.get("/api/tasks", headers=token(scope=5))).status_code == 401
        assert (await client.get("/api/tasks", headers=token(scopes=["read"]))).status_code == 200
        # Claims of the wrong type, even ones PyJWT would read as numbers.
        for bad in (
            token(exp=str(int(time.time() + 60))),
            token(exp=True),
            token(nbf=str(int(time.time() - 60))),
            token(iat="0"),
            token(iat=[1]),
            token(scope=["read", "write"]),
            token(scopes=["read"], scope=["write"]),
        ):
            response = await client.get("/api/tasks", headers=bad)
            assert response.status_code == 401, response.text
        fine = token(iat=int(time.time()), nbf=time.time() - 1.5)
        assert (await client.get("/api/tasks", headers=fine)).status_code == 200


async def test_the_docs_page_works_offline(database_url: str) -> None:
    async with api_client(database_url) as client:
        page = await client.get("/schema")
        assert page.status_code == 200
        assert "/schema/redoc.standalone.js" in page.text
        assert "http://" not in page.text and "https://" not in page.text
        script = await client.get("/schema/redoc.standalone.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("application/javascript")
        assert len(script.content) > 500_000
        assert (await client.get("/schema/openapi.json")).status_code == 200


ODD_JSON_VALUES = [
    "1" + "0" * 400,  # an integer far past 64 bits
    "1" * 5000,  # past Python's int-from-text limit
    "1e400",
    "-1e400",
    "1e-400",
    "9223372036854775808",
    "-9223372036854775809",
    '"\\ud800"',  # lone surrogates
    '"\\udfff x"',
    '"\\u0000"',
    '"' + "x" * 10_000 + '"',
    "[" * 3000 + "]" * 3000,
    "null",
    "true",
    "{}",
]
ODD_QUERY_VALUES = ["%00", "%ED%A0%80", "1" + "0" * 400, "1e400", "-1", "%FF%FE", "x" * 5000]


async def test_odd_values_in_every_field_and_parameter_never_give_a_server_error(
    database_url: str,
) -> None:
    fields = [
        "type",
        "name",
        "queue",
        "priority",
        "max_retries",
        "timeout_seconds",
        "run_at",
        "delay_seconds",
        "idempotency_key",
        "payload",
    ]
    parameters = [
        "status",
        "queue",
        "type",
        "created_after",
        "created_before",
        "cursor",
        "limit",
    ]
    headers = {"Content-Type": "application/json"}
    async with api_client(database_url) as client:
        statuses: set[int] = set()
        for value in ODD_JSON_VALUES:
            for field in fields:
                task = f'{{"type": "noop", "{field}": {value}}}'
                for path, body in (
                    ("/api/tasks", task),
                    ("/api/tasks/batch", f'{{"tasks": [{task}]}}'),
                    ("/api/tasks", f'{{"type": "noop", "payload": {{"{field}": {value}}}}}'),
                ):
                    response = await client.post(path, content=body.encode(), headers=headers)
                    statuses.add(response.status_code)
                    assert response.status_code < 500, (path, field, value[:40], response.text)
        for value in ODD_QUERY_VALUES:
            for parameter in parameters:
                response = await client.get(f"/api/tasks?{parameter}={value}")
                assert response.status_code < 500, (parameter, value[:40], response.text)
            for path in ("/api/tasks/{}", "/api/tasks/{}/history"):
                response = await client.get(path.format(value))
                assert response.status_code < 500, (path, value[:40], response.text)
            for action in ("cancel", "retry"):
                response = await client.post(f"/api/tasks/{value}/{action}")
                assert response.status_code < 500, (action, value[:40], response.text)
    assert {201, 400, 422} <= statuses


async def test_idempotency_keys_are_ascii_and_never_take_a_batch_members_shape(
    database_url: str, tq: TaskQueue
) -> None:
    async with api_client(database_url) as client:
        batch = await client.post(
            "/api/tasks/batch",
            json={"tasks": [{"type": "noop"}, {"type": "noop"}]},
            headers={"Idempotency-Key": "k"},
        )
        assert [t["idempotency_key"] for t in batch.json()] == ["k/0", "k/1"]
        # A single task cannot claim (and so return) a batch member's key.
        for key in ("k/0", "k/12"):
            single = await client.post(
                "/api/tasks", json={"type": "noop"}, headers={"Idempotency-Key": key}
            )
            assert (single.status_code, single.json()["field"]) == (422, "idempotency_key")
            assert "K/i" in single.json()["message"]
            in_body = await client.post("/api/tasks", json={"type": "noop", "idempotency_key": key})
            assert (in_body.status_code, in_body.json()["field"]) == (422, "idempotency_key")
            member = await client.post(
                "/api/tasks/batch",
                json={"tasks": [{"type": "noop"}, {"type": "noop", "idempotency_key": key}]},
            )
            assert member.json()["field"] == "tasks[1].idempotency_key"
        headers = [(b"idempotency-key", "clé-1".encode())]
        utf8 = await client.post("/api/tasks", json={"type": "noop"}, headers=headers)
        assert (utf8.status_code, utf8.json()["field"]) == (422, "idempotency_key")
        assert "ASCII only" in utf8.json()["message"]
        fine = await client.post("/api/tasks", json={"type": "noop", "idempotency_key": "clé-1"})
        assert fine.status_code == 201  # the body is UTF-8: any printable text
        for key in ("a/b", "k/0x", "v1/2/x"):
            ok = await client.post(
                "/api/tasks", json={"type": "noop"}, headers={"Idempotency-Key": key}
            )
            assert ok.status_code == 201, (key, ok.text)
    with pytest.raises(InvalidTask) as info:
        await tq.enqueue("noop", {}, idempotency_key="k/0")
    assert info.value.field == "idempotency_key"


async def test_a_key_given_twice_in_any_object_of_a_body_is_a_422(
    database_url: str, pool: asyncpg.Pool
) -> None:
    bodies = {
        "/api/tasks": [
            b'{"type": "noop", "type": "fail"}',
            b'{"type": "noop", "payload": {"to": "a@example.com", "to": "b@example.com"}}',
            b'{"type": "noop", "payload": {"deep": [{"x": 1, "x": 2}]}}',
        ],
        "/api/tasks/batch": [b'{"tasks": [{"type": "noop"}, {"type": "noop", "type": "x"}]}'],
        "/api/schedules": [b'{"name": "s", "name": "t", "type": "noop", "every_seconds": 60}'],
    }
    async with api_client(database_url) as client:
        for path, cases in bodies.items():
            for body in cases:
                response = await client.post(
                    path, content=body, headers={"Content-Type": "application/json"}
                )
                assert response.status_code == 422, (path, body, response.text)
                assert "given twice" in response.json()["message"]
        assert response.json()["field"] == "name"
        # The same key in different objects is no duplicate.
        fine = await client.post(
            "/api/tasks/batch",
            content=b'{"tasks": [{"type": "noop", "payload": {"type": 1}}, {"type": "noop"}]}',
            headers={"Content-Type": "application/json"},
        )
        assert fine.status_code == 201, fine.text
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == 2
