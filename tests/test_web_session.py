"""The dashboard's sessions and the server's side of its security, over HTTP
without a browser: the cookie's attributes and signature, scopes and CSRF
tokens checked on the API whatever page a request claims to come from,
sign-out, payloads escaped, the Content-Security-Policy; and every page
rendering at all."""

from __future__ import annotations

import re
import time
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from taskqueue.client import TaskQueue
from taskqueue.config import ConfigError, Settings
from taskqueue.http.auth import Authenticator
from taskqueue.web.session import COOKIE_NAME, Sessions
from tests.api_helpers import api_client

WRITER = "writer-token-0123456789"
READER = "reader-token-0123456789"
TOKENS = f"{WRITER}:read+write:ops-person,{READER}:read:watcher"
XSS = ['<script>alert("xss")</script>', '"><img src=x onerror=alert(1)>']


def sessions_for(tokens: str = TOKENS, **settings: Any) -> Sessions:
    config = Settings(api_tokens=tokens, **settings)
    return Sessions.from_settings(config, Authenticator.from_settings(config))


def csrf_of(page: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]*)">', page)
    assert found is not None
    return found.group(1)


async def signed_in(client: AsyncTestClient[Any], token: str) -> str:
    """Sign in; the CSRF token of the session (from a page, as a script reads it)."""
    answer = await client.post("/login", json={"token": token, "next": "/queues"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"next": "/queues"}
    page = await client.get("/queues")
    assert page.status_code == 200
    return csrf_of(page.text)


def test_a_session_cookie_is_signed_expires_and_follows_its_token() -> None:
    sessions = sessions_for()
    cookie, viewer = sessions.sign_in(WRITER, now=1000.0) or ("", None)
    assert viewer is not None and viewer.name == "ops-person" and viewer.can_write
    assert WRITER not in cookie  # the digest travels, never the token
    assert sessions.viewer(cookie, now=1001.0) == viewer
    assert sessions.viewer(cookie, now=1000.0 + 12 * 3600) is None  # expired
    payload, _, signature = cookie.partition(".")
    assert sessions.viewer(f"{payload}.{signature[:-2]}xx", now=1001.0) is None
    assert sessions.viewer(f"{payload[:-2]}AA.{signature}", now=1001.0) is None
    assert sessions.viewer("garbage", now=1001.0) is None
    assert sessions.sign_in("not-a-configured-token") is None
    # Another configuration (a token removed): the same cookie means nothing.
    assert sessions_for(f"{READER}:read").viewer(cookie, now=1001.0) is None
    # Processes configured alike accept each other's sessions (replicas, restarts).
    assert sessions_for().viewer(cookie, now=1001.0) == viewer


def test_a_read_token_session_cannot_claim_more_scopes() -> None:
    sessions = sessions_for()
    _, viewer = sessions.sign_in(READER) or ("", None)
    assert viewer is not None and not viewer.can_write and viewer.name == "watcher"


def test_a_short_session_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match="TASKQUEUE_SESSION_SECRET"):
        sessions_for(session_secret="short")


async def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_clears_it(
    database_url: str,
) -> None:
    async with api_client(database_url, api_tokens=TOKENS, session_hours=2) as client:
        page = await client.get("/", follow_redirects=False)
        assert (page.status_code, page.headers["location"]) == (303, "/login?next=%2F")
        wrong = await client.post("/login", json={"token": "wrong-token-0123456789"})
        assert wrong.status_code == 401
        answer = await client.post("/login", json={"token": WRITER, "next": "//evil.example"})
        assert answer.json() == {"next": "/"}  # never another site
        set_cookie = answer.headers["set-cookie"]
        assert set_cookie.startswith(f"{COOKIE_NAME}=")
        for attribute in ("HttpOnly", "SameSite=Strict", "Max-Age=7200", "Path=/"):
            assert attribute.lower() in set_cookie.lower(), set_cookie
        overview = await client.get("/")
        assert overview.status_code == 200
        assert "ops-person" in overview.text
        csrf = csrf_of(overview.text)
        refused = await client.post("/logout")  # no CSRF token
        assert refused.status_code == 403
        out = await client.post("/logout", headers={"X-CSRF-Token": csrf})
        assert out.status_code == 200
        assert "max-age=0" in out.headers["set-cookie"].lower()
        client.cookies.clear()
        again = await client.get("/tasks", follow_redirects=False)
        assert again.status_code == 303


async def test_the_api_refuses_a_read_session_and_a_missing_csrf_token(
    database_url: str, tq: TaskQueue
) -> None:
    await tq.enqueue("noop", queue="mail")
    async with api_client(database_url, api_tokens=TOKENS) as client:
        csrf = await signed_in(client, READER)
        page = (await client.get("/queues")).text
        assert "data-post" not in page and "data-limits" not in page  # no controls
        assert (await client.get("/api/queues")).status_code == 200  # reads work
        forged = await client.post("/api/queues/mail/pause", headers={"X-CSRF-Token": csrf})
        assert forged.status_code == 403
        assert "scope" in forged.json()["message"]
        bulk = await client.post(
            "/api/tasks/cancel", json={"filter": {"queue": "mail"}}, headers={"X-CSRF-Token": csrf}
        )
        assert bulk.status_code == 403

        client.cookies.clear()
        csrf = await signed_in(client, WRITER)
        assert "data-post" in (await client.get("/queues")).text
        no_token = await client.post("/api/queues/mail/pause")
        assert no_token.status_code == 403
        assert "CSRF" in no_token.json()["message"]
        wrong = await client.post("/api/queues/mail/pause", headers={"X-CSRF-Token": "x" * 43})
        assert wrong.status_code == 403
        paused = await client.post("/api/queues/mail/pause", headers={"X-CSRF-Token": csrf})
        assert (paused.status_code, paused.json()["paused"]) == (200, True)
        (action,) = await tq.actions(limit=1)
        assert (action.actor, action.action) == ("ops-person", "pause")
        # A bearer token still works as before, and needs no CSRF token.
        client.cookies.clear()
        bearer = await client.post(
            "/api/queues/mail/resume", headers={"Authorization": f"Bearer {WRITER}"}
        )
        assert bearer.status_code == 200


async def test_without_tokens_the_dashboard_is_open_and_sign_in_goes_home(
    database_url: str,
) -> None:
    async with api_client(database_url) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert csrf_of(page.text) == ""
        login = await client.get("/login", follow_redirects=False)
        assert (login.status_code, login.headers["location"]) == (303, "/")


async def test_every_page_renders_with_a_strict_content_security_policy(
    database_url: str, tq: TaskQueue
) -> None:
    failing = await tq.enqueue("fail", max_retries=0)
    async with api_client(database_url) as client:
        for path in ("/", "/tasks", "/tasks?status=queued", f"/tasks/{failing.id}", "/failures"):
            page = await client.get(path)
            assert page.status_code == 200, (path, page.text[:500])
            policy = page.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "unsafe-inline" not in policy
            assert "frame-ancestors 'none'" in policy
            assert page.headers["x-content-type-options"] == "nosniff"
        for path in ("/queues", "/workers"):
            assert (await client.get(path)).status_code == 200
        missing = await client.get("/tasks/0190f0a0-0000-7000-8000-000000000000")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("text/html")
        assert "not found" in missing.text
        script = await client.get("/static/dashboard.js")
        assert script.headers["content-type"].startswith("text/javascript")
        assert (await client.get("/static/..%2Fsession.py")).status_code == 404
        for odd in ("q=%00", "queue=a%00b", "type=%1b[31m", "queue=a%20b"):
            answer = await client.get(f"/tasks?{odd}")
            assert answer.status_code == 200, (odd, answer.text[:300])
            assert 'class="problem"' in answer.text, odd
        odd_failures = await client.get("/failures?queue=a%00&type=%00")
        assert odd_failures.status_code == 200
        assert 'class="problem"' in odd_failures.text
        bad_filter = await client.get("/tasks?created_after=yesterday")
        assert bad_filter.status_code == 200
        assert "created after: not a date and time" in bad_filter.text


async def test_payload_strings_are_escaped_everywhere(database_url: str, tq: TaskQueue) -> None:
    task = await tq.enqueue(
        "noop",
        {"html": XSS, XSS[1]: XSS[0]},
        name=XSS[1][:100],
        idempotency_key=XSS[0],
    )
    async with api_client(database_url) as client:
        for path in (f"/tasks/{task.id}", "/tasks", f"/tasks?q={XSS[0]}"):
            page = (await client.get(path)).text
            assert "<script>alert" not in page and "<img src=x" not in page, path
            assert "&lt;img src=x onerror=alert(1)&gt;" in page, path


async def test_the_task_page_shows_its_sequence_and_concurrency_keys(
    database_url: str, tq: TaskQueue
) -> None:
    task = await tq.enqueue(
        "noop",
        sequence_key="order-<b>42</b>",
        sequence_on_failure="block",
        concurrency_key="acct-7",
    )
    plain = await tq.enqueue("noop")
    async with api_client(database_url) as client:
        page = (await client.get(f"/tasks/{task.id}")).text
        assert "order-&lt;b&gt;42&lt;/b&gt; (a failure blocks it)" in page
        assert 'data-testid="concurrency-key">acct-7<' in page
        assert "sequence key" not in (await client.get(f"/tasks/{plain.id}")).text


def test_sign_in_time_is_bounded() -> None:
    """A signature check costs microseconds: no request is slowed by the cookie."""
    sessions = sessions_for()
    cookie, _ = sessions.sign_in(WRITER) or ("", None)
    started = time.perf_counter()
    for _ in range(1000):
        assert sessions.viewer(cookie) is not None
    assert time.perf_counter() - started < 1.0


async def test_sign_out_revokes_every_copy_of_the_session_in_every_process(
    database_url: str, pool: asyncpg.Pool
) -> None:
    async with api_client(database_url, api_tokens=TOKENS) as client:
        csrf = await signed_in(client, WRITER)
        copied = client.cookies[COOKIE_NAME]
        assert (await client.get("/api/tasks")).status_code == 200
        out = await client.post("/logout", headers={"X-CSRF-Token": csrf})
        assert out.status_code == 200
        client.cookies.clear()
        client.cookies[COOKIE_NAME] = copied  # the copy an attacker kept
        assert (await client.get("/api/tasks")).status_code == 401
        assert (await client.get("/queues", follow_redirects=False)).status_code == 303
    # Another API process, configured alike: it signed the session out too.
    async with api_client(database_url, api_tokens=TOKENS) as other:
        other.cookies[COOKIE_NAME] = copied
        assert (await other.get("/api/tasks")).status_code == 401
        assert (await other.get("/", follow_redirects=False)).status_code == 303
        # A new sign-in is a new session.
        other.cookies.clear()
        await signed_in(other, WRITER)
        assert (await other.get("/api/tasks")).status_code == 200
    kept = await pool.fetch("SELECT expires_at > now() AS live FROM taskqueue.revoked_sessions")
    assert [r["live"] for r in kept] == [True]
