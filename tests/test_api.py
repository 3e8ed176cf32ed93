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

from taskqueue.api.auth import Authenticator, check_binding
from taskqueue.config import ConfigError, Settings
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
        assert health.json() == {"status": "healthy"}
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
    assert error["known_types"] == ["fail", "noop", "sleep", "webhook"]


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
        if method in ("get", "post")
    }
    assert operations == {
        ("POST", "/api/tasks"),
        ("GET", "/api/tasks"),
        ("POST", "/api/tasks/batch"),
        ("GET", "/api/tasks/{task_id}"),
        ("GET", "/api/tasks/{task_id}/history"),
        ("POST", "/api/tasks/{task_id}/cancel"),
        ("POST", "/api/tasks/{task_id}/retry"),
        ("GET", "/api/stats"),
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/api/schedules"),
        ("POST", "/api/schedules"),
        ("GET", "/api/schedules/{name}"),
        ("POST", "/api/schedules/{name}/pause"),
        ("POST", "/api/schedules/{name}/resume"),
        ("POST", "/api/schedules/{name}/trigger"),
    }
    assert spec["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    create = spec["paths"]["/api/tasks"]["post"]
    assert create["security"] == [{"BearerToken": []}]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert {"type", "payload", "priority", "run_at"} <= set(body["properties"])
    assert {"201", "400", "401", "403", "413", "422", "503"} <= set(create["responses"])
    assert "ErrorBody" in spec["components"]["schemas"]
