"""The dashboard in a real browser: headless Chromium (Debian's package)
driven by Playwright, against a real `taskqueue api` process, a real worker
process and PostgreSQL.

Without Chromium these tests are skipped, saying why; with
TASKQUEUE_REQUIRE_BROWSER=1 (CI sets it) a missing browser fails them.
Screenshots of every page at 1280 and 390 px go to
build/dashboard-screenshots/ (not committed)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.api_helpers import api_process, free_port
from tests.helpers import wait_until, worker_process

CHROMIUM = os.environ.get("TASKQUEUE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "build" / "dashboard-screenshots"
WRITER = "writer-token-0123456789"
READER = "reader-token-0123456789"
TOKENS = f"{WRITER}:read+write:ops-person,{READER}:read:watcher"
XSS = ['<script>alert("xss")</script>', '"><img src=x onerror=alert(1)>']
# What reaches past the right edge, outside the tables' own scroll boxes.
WIDER_THAN_THE_SCREEN = """
Array.from(document.querySelectorAll("body *"))
  .filter((el) => !el.parentElement.closest(".scroll"))
  .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1)
  .map((el) => el.tagName + "." + el.className + ": " + (el.textContent || "").slice(0, 40))
"""
# Quick retries, so that a failing task's attempts follow each other fast.
FAST_WORKER = {"backoff_base": "0.2", "backoff_cap": "0.4", "heartbeat_seconds": "1"}


def _browser_missing() -> str | None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (make install adds it)"
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).is_file()):
        return (
            f"no Chromium at {CHROMIUM}: install Debian's chromium (apt-get install chromium) "
            "or set TASKQUEUE_CHROMIUM to a Chromium binary"
        )
    return None


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    missing = _browser_missing()
    if missing is not None:
        if os.environ.get("TASKQUEUE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests required (TASKQUEUE_REQUIRE_BROWSER=1) but {missing}")
        pytest.skip(f"dashboard browser tests skipped: {missing}")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@asynccontextmanager
async def stack(
    database_url: str, tmp_path: Path, *, port: int | None = None, **api_env: str
) -> AsyncIterator[str]:
    """A real API and a real worker (queues default and other) on the
    database; yields the API's base URL."""
    async with (
        api_process(database_url, tmp_path / "api.log", port=port, **api_env) as (base, _),
        worker_process(
            database_url, tmp_path / "worker.log", queues="default,other", **FAST_WORKER
        ),
    ):
        yield base


@asynccontextmanager
async def page_at(browser: Any, url: str, width: int = 1280, **context: Any) -> AsyncIterator[Any]:
    """A page of its own browser context (its own cookies) that records
    console errors (CSP violations among them) and fails on any dialog it did
    not expect (an alert from injected script)."""
    ctx = await browser.new_context(viewport={"width": width, "height": 900}, **context)
    page = await ctx.new_page()
    page.console_errors = []
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    page.dialogs = []

    async def on_dialog(dialog: Any) -> None:
        page.dialogs.append((dialog.type, dialog.message))
        if dialog.type == "confirm":
            await dialog.accept()
        else:
            await dialog.dismiss()

    page.on("dialog", on_dialog)
    try:
        if url:
            await page.goto(url)
        yield page
    finally:
        await ctx.close()


async def enqueue(base: str, **task: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, headers=task.pop("headers", {})) as client:
        answer = await client.post("/api/tasks", json=task)
        assert answer.status_code == 201, answer.text
        created: dict[str, Any] = answer.json()
        return created


async def get_json(base: str, path: str, headers: dict[str, str] | None = None) -> Any:
    async with httpx.AsyncClient(base_url=base, headers=headers or {}) as client:
        answer = await client.get(path)
        assert answer.status_code == 200, answer.text
        return answer.json()


async def status_of(pool: asyncpg.Pool, task_id: str) -> str:
    return str(
        await pool.fetchval("SELECT status FROM taskqueue.tasks WHERE id = $1", uuid.UUID(task_id))
    )


async def test_overview_matches_stats_and_follows_new_tasks_without_reload(
    browser: Any, database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    async with stack(database_url, tmp_path) as base:
        done = [await enqueue(base, type="noop") for _ in range(3)]
        failed = await enqueue(base, type="fail", max_retries=0)
        await wait_finished(pool, *done, failed)
        # A queue no worker takes from: what is enqueued there stays queued.
        await enqueue(base, type="noop", queue="parked")
        stats = await get_json(base, "/api/stats")
        async with (
            page_at(browser, f"{base}/") as overview,
            page_at(browser, f"{base}/tasks") as tasks,
        ):
            for name in ("total", "queued", "running", "succeeded", "failed", "cancelled"):
                shown = overview.locator(f'[data-count="{name}"]')
                await expect(shown).to_have_text(f"{stats[f'{name}_tasks']:,}")
            await expect(overview.locator("#live-status")).to_have_text("live")
            await expect(tasks.locator("#live-status")).to_have_text("live")
            await overview.evaluate("window.notReloaded = true")
            await tasks.evaluate("window.notReloaded = true")

            new = await enqueue(base, type="noop", queue="parked", name="fresh-task")
            await expect(overview.locator('[data-count="queued"]')).to_have_text(
                f"{stats['queued_tasks'] + 1:,}", timeout=2000
            )
            await expect(overview.locator('[data-count="total"]')).to_have_text(
                f"{stats['total_tasks'] + 1:,}", timeout=2000
            )
            await expect(tasks.locator(f'tr[data-task="{new["id"]}"]')).to_be_visible(timeout=2000)
            assert await overview.evaluate("window.notReloaded") is True
            assert await tasks.evaluate("window.notReloaded") is True
            assert overview.console_errors == [] and tasks.console_errors == []


async def wait_finished(pool: asyncpg.Pool, *tasks: dict[str, Any]) -> None:
    ids = [uuid.UUID(t["id"]) for t in tasks]

    async def finished() -> bool:
        count = await pool.fetchval(
            "SELECT count(*) FROM taskqueue.tasks"
            " WHERE id = ANY($1) AND status IN ('succeeded', 'failed', 'cancelled')",
            ids,
        )
        return bool(count == len(ids))

    await wait_until(finished)


async def test_a_failing_task_shows_each_attempt_live_and_retry_requeues_it(
    browser: Any, database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    async with stack(database_url, tmp_path) as base:
        # Held in a paused queue until the page is open, so that it sees every attempt.
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.post("/api/queues/default/pause")).status_code == 200
        task = await enqueue(
            base, type="fail", max_retries=2, payload={"message": "card declined for order 7"}
        )
        async with page_at(browser, f"{base}/tasks/{task['id']}") as page:
            await expect(page.locator("#live-status")).to_have_text("live")
            await expect(page.locator("text=Not started yet.")).to_be_visible()
            async with httpx.AsyncClient(base_url=base) as client:
                assert (await client.post("/api/queues/default/resume")).status_code == 200
            attempts = page.locator("table.attempts tbody tr")
            await expect(attempts).to_have_count(3, timeout=15_000)
            for row in range(3):
                await expect(attempts.nth(row)).to_contain_text("card declined for order 7")
            await expect(attempts.nth(0)).to_contain_text("failed, retry scheduled")
            await expect(attempts.nth(2)).to_contain_text("failed")
            await expect(page.locator(".task-head .badge")).to_have_text("failed")
            await expect(page.locator("#error-h")).to_be_visible()

            await page.get_by_role("button", name="Retry").click()
            await expect(page.locator("#flash")).to_have_text("Task requeued")
            requeued = await pool.fetchval(
                "SELECT count(*) FROM taskqueue.task_events"
                " WHERE task_id = $1 AND event_type = 'task_requeued'",
                uuid.UUID(task["id"]),
            )
            assert requeued == 1
            # It runs again (and fails again): the page follows.
            await expect(page.locator("li[data-event='task_requeued']")).to_have_count(1)
            await expect(attempts).to_have_count(6, timeout=15_000)
            assert page.console_errors == []


async def test_pause_from_the_page_holds_new_tasks_and_resume_runs_them(
    browser: Any, database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    async with stack(database_url, tmp_path) as base:
        first = await enqueue(base, type="noop")
        await wait_finished(pool, first)
        async with page_at(browser, f"{base}/queues") as page:
            row = page.locator('tr[data-queue="default"]')
            await row.get_by_role("button", name="Pause").click()
            await expect(row.locator(".badge.paused")).to_have_text("paused")
            held = [await enqueue(base, type="noop") for _ in range(3)]
            # A task of another queue, enqueued after them, runs: the worker
            # has claimed since, and passed over the paused queue.
            witness = await enqueue(base, type="noop", queue="other")
            await wait_finished(pool, witness)
            assert [await status_of(pool, t["id"]) for t in held] == ["queued"] * 3

            await row.get_by_role("button", name="Resume").click()
            await expect(row.locator(".badge.paused")).to_have_count(0)
            await wait_finished(pool, *held)
            assert [await status_of(pool, t["id"]) for t in held] == ["succeeded"] * 3
            # Limits, edited in place.
            await row.get_by_label("at once").fill("3")
            await row.get_by_label("starts").fill("10")
            await row.get_by_label("per seconds").fill("60")
            await row.get_by_label("per key").fill("2")
            await row.get_by_role("button", name="Save").click()
            await expect(page.locator("#flash")).to_have_text("Limits saved")
            settings = await pool.fetchrow(
                "SELECT concurrency_limit, rate_limit, rate_period_seconds, per_key_concurrency"
                " FROM taskqueue.queues WHERE name = 'default'"
            )
            assert settings is not None and tuple(settings) == (3, 10, 60.0, 2)
            await row.get_by_label("at once").fill("")
            await row.get_by_role("button", name="Save").click()
            await expect(row.get_by_label("at once")).to_have_value("")
            await wait_until(lambda: _concurrency_limit_removed(pool))
            actions = await pool.fetch(
                "SELECT actor, action FROM taskqueue.operator_actions ORDER BY id"
            )
            assert [(a["actor"], a["action"]) for a in actions][:2] == [
                ("local", "pause"),
                ("local", "resume"),
            ]
            assert len(actions) == 4  # and the two changes of limits


async def _concurrency_limit_removed(pool: asyncpg.Pool) -> bool:
    limit = await pool.fetchval(
        "SELECT concurrency_limit FROM taskqueue.queues WHERE name = 'default'"
    )
    return limit is None


async def test_bulk_retry_of_a_failure_group_changes_every_task_in_it(
    browser: Any, database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    async with stack(database_url, tmp_path) as base:
        group = [
            await enqueue(base, type="fail", max_retries=0, payload={"message": f"order {n} lost"})
            for n in range(12)
        ]
        other = await enqueue(base, type="fail", max_retries=0, payload={"message": "disk full"})
        await wait_finished(pool, *group, other)
        async with page_at(browser, f"{base}/failures") as page:
            row = page.locator("tr", has_text="IntentionalFailure: order <n> lost")
            await expect(row.locator("td").first).to_have_text("12")
            # Nothing runs them again while we look: the group stays as it was retried.
            async with httpx.AsyncClient(base_url=base) as client:
                assert (await client.post("/api/queues/default/pause")).status_code == 200
            await row.get_by_role("button", name="Retry").click()
            await expect(page.locator("#flash")).to_have_text("retry: 12 matched, 12 changed")
            assert page.dialogs and page.dialogs[0][0] == "confirm"
            ids = [uuid.UUID(t["id"]) for t in group]
            requeued = await pool.fetchval(
                "SELECT count(DISTINCT task_id) FROM taskqueue.task_events"
                " WHERE task_id = ANY($1) AND event_type = 'task_requeued'",
                ids,
            )
            assert requeued == 12
            assert {await status_of(pool, t["id"]) for t in group} == {"queued"}
            assert await status_of(pool, other["id"]) == "failed"
            await expect(row).to_have_count(0)  # the page follows: the group is gone


async def test_bulk_actions_on_ticked_tasks_and_on_all_matching_the_filter(
    browser: Any, database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    async with stack(database_url, tmp_path) as base:
        # A queue no worker takes from: its tasks wait, so they can be cancelled.
        parked = [await enqueue(base, type="noop", queue="parked") for _ in range(5)]
        spare = await enqueue(base, type="noop", queue="elsewhere")
        async with page_at(browser, f"{base}/tasks?queue=parked") as page:
            rows = page.locator("table.tasks tbody tr")
            await expect(rows).to_have_count(5)
            for task in parked[:2]:
                await page.locator(f'tr[data-task="{task["id"]}"] input[name="task"]').check()
            await expect(page.locator("#selected-count")).to_have_text("2 selected")
            await page.get_by_role("button", name="Cancel").click()
            await expect(page.locator("#flash")).to_have_text("cancel: 2 matched, 2 changed")
            assert [await status_of(pool, t["id"]) for t in parked] == ["cancelled"] * 2 + [
                "queued"
            ] * 3
            await expect(page.locator("table.tasks .badge.s-cancelled")).to_have_count(2)

            await page.get_by_label("all tasks matching this filter").check()
            await page.get_by_role("button", name="Cancel").click()
            await expect(page.locator("#flash")).to_have_text("cancel: 5 matched, 3 changed")
            assert {await status_of(pool, t["id"]) for t in parked} == {"cancelled"}
            assert await status_of(pool, spare["id"]) == "queued"  # not in the filter
            await page.get_by_label("all tasks matching this filter").check()
            await page.get_by_role("button", name="Delete").click()
            await expect(page.locator("#flash")).to_have_text("delete: 5 matched, 5 changed")
            await expect(page.locator("text=No tasks match these filters.")).to_be_visible()
        # "All matching" is not offered where the bulk filter cannot say it.
        async with page_at(browser, f"{base}/tasks?q=task") as page:
            await expect(page.locator("#all-matching")).to_have_count(0)


async def test_a_read_only_token_sees_no_controls_and_the_server_refuses_its_actions(
    browser: Any, database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    auth = {"Authorization": f"Bearer {WRITER}"}
    async with stack(database_url, tmp_path, api_tokens=TOKENS) as base:
        failed = await enqueue(base, type="fail", max_retries=0, headers=auth)
        await wait_finished(pool, failed)
        async with page_at(browser, f"{base}/queues") as page:
            await expect(page).to_have_url(f"{base}/login?next=%2Fqueues")
            await page.get_by_label("API token").fill(READER)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page).to_have_url(f"{base}/queues")
            await expect(page.locator(".viewer")).to_have_text("watcher (read only)")
            (cookie,) = await page.context.cookies()
            assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Strict")
            assert cookie["expires"] > 0  # not a session-only cookie: it has its expiry
            assert await page.evaluate("document.cookie") == ""  # scripts cannot read it
            for path in ("/", "/queues", "/failures", f"/tasks/{failed['id']}", "/tasks"):
                await page.goto(f"{base}{path}")
                controls = page.locator("[data-post], [data-bulk], [data-bulk-action], form.limits")
                await expect(controls).to_have_count(0)
                await expect(page.locator("#live-status")).to_have_text("live")
            csrf = await page.locator('meta[name="csrf-token"]').get_attribute("content")
            # A forged request with the read session's cookie and CSRF token: refused.
            forged = await page.request.post(
                f"{base}/api/tasks/{failed['id']}/retry", headers={"X-CSRF-Token": csrf or ""}
            )
            assert forged.status == 403
            await page.get_by_role("button", name="Sign out").click()
            await expect(page).to_have_url(f"{base}/login")
            assert await page.context.cookies() == []

        async with page_at(browser, f"{base}/login") as page:
            await page.get_by_label("API token").fill(WRITER)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.locator(".viewer")).to_have_text("ops-person")
            await page.goto(f"{base}/tasks/{failed['id']}")
            # The write session without its CSRF token: refused too.
            no_csrf = await page.request.post(f"{base}/api/tasks/{failed['id']}/retry")
            assert no_csrf.status == 403
            assert await status_of(pool, failed["id"]) == "failed"
            await page.get_by_role("button", name="Retry").click()
            await expect(page.locator("#flash")).to_have_text("Task requeued")
            actor = await pool.fetchval(
                "SELECT actor FROM taskqueue.operator_actions WHERE action = 'retry'"
            )
            assert actor == "ops-person"


async def test_payloads_meant_as_markup_render_as_text(
    browser: Any, database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    async with stack(database_url, tmp_path) as base:
        task = await enqueue(
            base,
            type="fail",
            max_retries=0,
            name=XSS[1],
            payload={"message": XSS[0] + XSS[1]},
            idempotency_key=XSS[0],
        )
        await wait_finished(pool, task)
        # Failure groups show the error with its numbers masked.
        masked = XSS[1].replace("(1)", "(<n>)")
        for path, shown in (
            (f"/tasks/{task['id']}", XSS[1]),
            ("/tasks", XSS[1]),
            ("/failures", masked),
            ("/", masked),
        ):
            async with page_at(browser, f"{base}{path}") as page:
                await expect(page.locator("#live-status")).to_have_text("live")
                assert shown in await page.locator("main").inner_text(), path
                assert await page.locator("img").count() == 0, path
                assert await page.locator("main script").count() == 0, path
                assert page.dialogs == [], path
        async with page_at(browser, f"{base}/tasks/{task['id']}") as page:
            await expect(page.get_by_test_id("payload")).to_contain_text(
                '"message": "<script>alert(\\"xss\\")</script>\\"><img src=x onerror=alert(1)>"'
            )
            await expect(page.locator("#error-h + pre")).to_contain_text(XSS[0] + XSS[1])


async def test_the_stream_pauses_in_a_hidden_tab_and_reconnects_after_an_api_restart(
    browser: Any, database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    port = free_port()
    async with worker_process(database_url, tmp_path / "worker.log", **FAST_WORKER):
        async with api_process(database_url, tmp_path / "api.log", port=port) as (base, _):
            ctx_page = page_at(browser, f"{base}/")
            page = await ctx_page.__aenter__()
            try:
                live = page.locator("#live-status")
                await expect(live).to_have_text("live")
                await page.evaluate(
                    "Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
                    "document.dispatchEvent(new Event('visibilitychange'))"
                )
                await expect(live).to_have_text("paused")
                await page.evaluate(
                    "Object.defineProperty(document, 'hidden', {value: false, configurable: true});"
                    "document.dispatchEvent(new Event('visibilitychange'))"
                )
                await expect(live).to_have_text("live")
            except BaseException:
                await ctx_page.__aexit__(None, None, None)
                raise
        # The API is gone: the page says so, and comes back with it.
        try:
            await expect(live).to_have_text("reconnecting…", timeout=10_000)
            async with api_process(database_url, tmp_path / "api.log", port=port) as (base, _):
                await expect(live).to_have_text("live", timeout=15_000)
                await page.evaluate("window.notReloaded = true")
                await enqueue(base, type="noop", queue="parked")
                await expect(page.locator('[data-count="queued"]')).to_have_text("1")
                assert await page.evaluate("window.notReloaded") is True
        finally:
            await ctx_page.__aexit__(None, None, None)


async def test_screenshots_of_every_page_at_desktop_and_phone_width(
    browser: Any, database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with stack(database_url, tmp_path) as base:
        tasks = [
            await enqueue(base, type="noop", name=f"welcome email {n}", payload={"n": n})
            for n in range(8)
        ]
        failing = await enqueue(
            base,
            type="fail",
            max_retries=1,
            name="charge order 42",
            payload={"message": "card declined for order 42"},
        )
        await enqueue(base, type="noop", queue="parked", name="waiting for a worker")
        await wait_finished(pool, *tasks, failing)
        pages = {
            "overview": "/",
            "tasks": "/tasks",
            "task": f"/tasks/{failing['id']}",
            "failures": "/failures",
            "queues": "/queues",
            "tenants": "/tenants",
            "workers": "/workers",
        }
        for width in (1280, 390):
            for name, path in pages.items():
                async with page_at(browser, f"{base}{path}", width=width) as page:
                    await expect(page.locator("#live-status")).to_have_text("live")
                    # Nothing wider than the screen but the tables' own scroll boxes.
                    overflow = await page.evaluate(
                        "document.documentElement.scrollWidth - window.innerWidth"
                    )
                    if overflow > 0:
                        wider = await page.evaluate(WIDER_THAN_THE_SCREEN)
                        raise AssertionError(
                            f"{name} at {width} px: {overflow} px too wide {wider}"
                        )
                    shot = SCREENSHOTS / f"{name}-{width}.png"
                    await page.screenshot(path=str(shot), full_page=True)
                    assert shot.stat().st_size > 5000
                    assert page.console_errors == [], (name, page.console_errors)
                # Keyboard: the first Tab reaches the skip link, and it leads to the content.
                async with page_at(browser, f"{base}{path}", width=width) as page:
                    await page.keyboard.press("Tab")
                    focused = await page.evaluate("document.activeElement.textContent")
                    assert focused == "Skip to content"


async def test_a_tenant_token_signs_in_to_its_own_view(
    browser: Any, database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    tenant_token = "acme-token-0123456789abc"
    tokens = f"{TOKENS},{tenant_token}:read+write:acme-bot:acme"
    operator = {"Authorization": f"Bearer {WRITER}"}
    async with stack(database_url, tmp_path, api_tokens=tokens) as base:
        async with httpx.AsyncClient(base_url=base, headers=operator) as client:
            quota = await client.patch(
                "/api/tenants/acme",
                json={"max_queued": 10, "rate_limit": {"limit": 5, "period_seconds": 60}},
            )
            assert quota.status_code == 200, quota.text
        later = "2999-01-01T00:00:00Z"
        theirs = await enqueue(
            base, type="noop", name="globex-task", tenant="globex", run_at=later, headers=operator
        )
        async with page_at(browser, f"{base}/login") as page:
            await page.get_by_label("API token").fill(tenant_token)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page).to_have_url(f"{base}/tasks")
            await expect(page.locator("[data-tenant]")).to_have_text("acme")
            await expect(page.get_by_role("link", name="Queues")).to_have_count(0)
            # Enqueued while the page is open: the live stream brings it in.
            mine = await enqueue(
                base,
                type="noop",
                name="acme-task",
                run_at=later,
                headers={"Authorization": f"Bearer {tenant_token}"},
            )
            await expect(page.locator(f'tr[data-task="{mine["id"]}"]')).to_be_visible()
            await expect(page.locator(f'tr[data-task="{theirs["id"]}"]')).to_have_count(0)
            await expect(page.locator('[data-region="quota"]')).to_contain_text("of at most 10")
            await expect(page.locator('[data-region="quota"]')).to_contain_text(
                "Starts in the last 60 s: 0 of at most 5 (rate limit)"
            )
            foreign = await page.goto(f"{base}/tasks/{theirs['id']}")
            assert foreign is not None and foreign.status == 404
            assert "globex-task" not in await page.content()
            page.console_errors.clear()  # that 404 was the point
            await page.goto(f"{base}/tasks/{mine['id']}")
            await expect(page.locator("#live-status")).to_have_text("live")
            assert page.console_errors == []
            tenants = await page.goto(f"{base}/tenants")
            assert tenants is not None and tenants.status == 403
        # An operator sees every tenant's quota use, and sets limits in place.
        async with page_at(browser, f"{base}/login") as page:
            await page.get_by_label("API token").fill(WRITER)
            await page.get_by_role("button", name="Sign in").click()
            await page.get_by_role("link", name="Tenants").click()
            await expect(page).to_have_url(f"{base}/tenants")
            row = page.locator('tr[data-tenant="acme"]')
            await expect(row.locator("[data-unfinished]")).to_have_text("1")
            await expect(row.locator("[data-quota-used]")).to_have_text("10 %")
            await expect(row.locator("[data-recent-starts]")).to_have_text("0 of 5")
            await expect(page.locator('tr[data-tenant="globex"]')).to_have_count(0)
            await row.get_by_label("max unfinished").fill("20")
            await row.get_by_role("button", name="Save").click()
            await expect(page.locator("#flash")).to_have_text("Limits saved")
            await expect(row.locator("[data-quota-used]")).to_have_text("5 %")
            other = page.get_by_role("form", name="Limits of another tenant")
            await other.get_by_label("Tenant").fill("globex")
            await other.get_by_label("max unfinished").fill("4")
            await other.get_by_role("button", name="Set limits").click()
            # Its first quota counts its unfinished task (theirs) once.
            globex = page.locator('tr[data-tenant="globex"]')
            await expect(globex.locator("[data-quota-used]")).to_have_text("25 %")
            # The form is empty again, ready for the next tenant.
            await expect(other.get_by_label("Tenant")).to_have_value("")
            await expect(other.get_by_label("max unfinished")).to_have_value("")
            quotas = await pool.fetch("SELECT name, max_queued FROM taskqueue.tenants ORDER BY 1")
            assert [tuple(r) for r in quotas] == [("acme", 20), ("globex", 4)]
            # Saving one limit touches no other: initech has a rate limit and
            # no quota, and keeps no quota (nor starts being counted) when
            # its rate changes; acme keeps its quota when its rate goes.
            async with httpx.AsyncClient(base_url=base, headers=operator) as client:
                rated = await client.patch(
                    "/api/tenants/initech",
                    json={"rate_limit": {"limit": 7, "period_seconds": 60}},
                )
                assert rated.status_code == 200, rated.text
            await page.reload()
            initech = page.locator('tr[data-tenant="initech"]')
            await initech.get_by_label("starts").fill("9")
            await initech.get_by_role("button", name="Save").click()
            await expect(initech.locator("[data-recent-starts]")).to_have_text("0 of 9")
            row = page.locator('tr[data-tenant="acme"]')
            await row.get_by_label("starts").fill("")
            await row.get_by_role("button", name="Save").click()
            await expect(row.locator("[data-recent-starts]")).to_have_text("—")
            quotas = await pool.fetch("SELECT name, max_queued FROM taskqueue.tenants ORDER BY 1")
            assert [tuple(r) for r in quotas] == [("acme", 20), ("globex", 4)]
            rates = await pool.fetch("SELECT tenant, rate_limit FROM taskqueue.tenant_rates")
            assert [tuple(r) for r in rates] == [("initech", 9)]
            assert page.console_errors == []
