"""The DNS-rebinding guard: with auth off only loopback names (and
TASKQUEUE_ALLOWED_HOSTS) in ``Host`` reach the API and the dashboard."""

from __future__ import annotations

import pytest

from taskqueue.config import ConfigError, Settings
from taskqueue.http.hosts import host_name, parse_allowed_hosts
from tests.api_helpers import api_client

TOKEN = "a-token-of-sixteen-chars-or-more"


def test_host_names_drop_port_brackets_case_and_final_dot() -> None:
    assert host_name(b"127.0.0.1:8000") == "127.0.0.1"
    assert host_name(b"[::1]:8000") == "::1"
    assert host_name(b"[::1]") == "::1"
    assert host_name(b"LocalHost.") == "localhost"
    assert host_name(b"localhost:http") is None
    assert host_name(b"[::1]x") is None
    assert host_name(b"") is None


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:1", "[::1]:8000"])
async def test_loopback_hosts_are_answered_without_auth(database_url: str, host: str) -> None:
    async with api_client(database_url) as client:
        for path in ("/api/tasks", "/"):
            response = await client.get(path, headers={"Host": host})
            assert response.status_code == 200, (host, path, response.text)
        created = await client.post("/api/tasks", json={"type": "noop"}, headers={"Host": host})
        assert created.status_code == 201


@pytest.mark.parametrize(
    "host", ["rebind.attacker.example", "rebind.attacker.example:8000", "127.0.0.1.nip.io", "0"]
)
async def test_other_hosts_get_421_on_api_and_dashboard_without_auth(
    database_url: str, host: str
) -> None:
    async with api_client(database_url) as client:
        for method, path in (("GET", "/api/tasks"), ("POST", "/api/tasks"), ("GET", "/")):
            response = await client.request(
                method, path, json={"type": "noop"}, headers={"Host": host}
            )
            assert response.status_code == 421, (host, path, response.text)
            assert "TASKQUEUE_ALLOWED_HOSTS" in response.text  # a page on /, JSON on the API
            if path.startswith("/api/"):
                assert response.json()["error"] == "misdirected_request"
        count = await client.get("/api/stats")
        assert count.json()["total_tasks"] == 0
        # Probes name an address; health holds no task data.
        assert (await client.get("/health", headers={"Host": host})).status_code == 200


async def test_allowed_hosts_open_names_behind_a_proxy(database_url: str) -> None:
    async with api_client(database_url, allowed_hosts="queue.internal, Tasks.Example.com") as c:
        for host in ("queue.internal", "tasks.example.com:443", "localhost"):
            assert (await c.get("/api/tasks", headers={"Host": host})).status_code == 200
        assert (await c.get("/api/tasks", headers={"Host": "other.example"})).status_code == 421


async def test_with_auth_on_any_host_unless_allowed_hosts_is_set(database_url: str) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}", "Host": "api.example.com"}
    async with api_client(database_url, api_tokens=TOKEN) as client:
        assert (await client.get("/api/tasks", headers=auth)).status_code == 200
    async with api_client(database_url, api_tokens=TOKEN, allowed_hosts="api.example.org") as c:
        assert (await c.get("/api/tasks", headers=auth)).status_code == 421


def test_allowed_hosts_are_checked_at_start() -> None:
    assert parse_allowed_hosts(" a.example ,[::1]:80,") == frozenset({"a.example", "::1"})
    with pytest.raises(ConfigError, match="TASKQUEUE_ALLOWED_HOSTS"):
        Settings.from_env({"TASKQUEUE_ALLOWED_HOSTS": "bad host:x"})
