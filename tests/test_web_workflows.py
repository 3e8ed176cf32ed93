"""The workflow pages in a real browser (headless Chromium via Playwright,
as tests/test_web_browser.py): the graph with live statuses, each node
linking to its task, against a real API process, worker process and
PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.test_web_browser import browser, page_at, stack

__all__ = ["browser"]  # the session fixture, shared with the dashboard's other browser tests


async def test_the_workflow_page_draws_the_graph_and_follows_it_live(
    browser: Any, database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    async with stack(database_url, tmp_path) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            # Held until the page is open, so that it sees the graph move.
            assert (await client.post("/api/queues/default/pause")).status_code == 200
            created = await client.post(
                "/api/workflows",
                json={
                    "name": "page-etl",
                    "tasks": [
                        {"ref": "extract", "type": "noop"},
                        {"ref": "clean", "type": "noop", "depends_on": ["extract"]},
                        {"ref": "load", "type": "noop", "depends_on": ["clean"]},
                    ],
                },
            )
            assert created.status_code == 201, created.text
            wf = created.json()
        async with page_at(browser, f"{base}/workflows/{wf['id']}") as page:
            await expect(page.locator("#live-status")).to_have_text("live")
            load = page.locator('a[data-node="load"]')
            await expect(load).to_have_attribute("data-status", "waiting")
            await expect(page.locator('a[data-node="extract"]')).to_have_attribute(
                "data-status", "queued"
            )
            await expect(page.locator('li[data-layer="2"] a[data-node="load"]')).to_be_visible()
            await expect(load).to_contain_text("after clean")
            await page.evaluate("window.notReloaded = true")
            async with httpx.AsyncClient(base_url=base) as client:
                assert (await client.post("/api/queues/default/resume")).status_code == 200
            await expect(load).to_have_attribute("data-status", "succeeded", timeout=15_000)
            await expect(page.locator("h1 + div .badge").first).to_have_text("succeeded")
            assert await page.evaluate("window.notReloaded") is True
            await load.click()
            load_id = next(t["id"] for t in wf["tasks"] if t["ref"] == "load")
            await expect(page).to_have_url(f"{base}/tasks/{load_id}")
            await expect(page.locator(".task-head")).to_contain_text("workflow step load")
            assert page.console_errors == []
        async with page_at(browser, f"{base}/workflows") as listing:
            row = listing.locator(f'tr[data-workflow="{wf["id"]}"]')
            await expect(row).to_contain_text("page-etl")
            await expect(row).to_contain_text("succeeded")
            assert listing.console_errors == []
