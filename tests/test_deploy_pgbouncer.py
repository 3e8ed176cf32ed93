"""The PgBouncer deploy files: compose.yaml's `pgbouncer` profile and the
deploy/kubernetes/pgbouncer overlay send the API's and the workers'
statements through PgBouncer in transaction mode and keep each worker's
LISTEN on the server; the overlay validates against the Kubernetes schemas
once its patches are applied; KEDA's queries run through a real PgBouncer."""

from __future__ import annotations

import configparser
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from taskqueue import db
from taskqueue.client import TaskQueue
from taskqueue.config import Settings
from taskqueue.models import NewTask
from tests.api_helpers import api_client
from tests.helpers import all_in_status, running_worker, wait_until
from tests.pgbouncer import Bouncer, running_pgbouncer
from tests.test_deploy_compose import compose, example_env, service_env
from tests.test_deploy_kubernetes import (
    KUBERNETES_VERSIONS,
    NAMESPACE,
    keda_queries,
    secret_example,
    the,
)
from tests.test_deploy_roles import ROLES, Dsns, dsns, passwords

REPO = Path(__file__).resolve().parent.parent
OVERLAY = REPO / "deploy" / "kubernetes" / "pgbouncer"
POOLING_KEYS = (
    "pool_mode",
    "default_pool_size",
    "reserve_pool_size",
    "max_db_connections",
    "max_prepared_statements",
    "server_reset_query",
)

Manifest = dict[str, Any]


def ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(inline_comment_prefixes=(";",))
    parser.read_string(text)
    return parser


def overlay_docs(name: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all((OVERLAY / name).read_text()) if doc]


def overlay_secret() -> dict[str, str]:
    (secret,) = overlay_docs("secret.example.yaml")
    data: dict[str, str] = secret["stringData"]
    return data


def merge_containers(base: Manifest, patch: Manifest) -> Manifest:
    """A strategic merge of a Deployment patch that sets container env
    entries (merged by name, as kubectl/kustomize merge them)."""
    merged = copy.deepcopy(base)
    containers = {c["name"]: c for c in merged["spec"]["template"]["spec"]["containers"]}
    for change in patch["spec"]["template"]["spec"]["containers"]:
        target = containers[change["name"]]
        env = {e["name"]: e for e in target.get("env", [])}
        for entry in change.get("env", []):
            env[entry["name"]] = entry
        target["env"] = list(env.values())
    return merged


def patched(kind: str, name: str) -> Manifest:
    kustomization = overlay_docs("kustomization.yaml")[0]
    result = the(kind, name)
    for entry in kustomization["patches"]:
        (patch,) = overlay_docs(entry["path"])
        if (patch["kind"], patch["metadata"]["name"]) == (kind, name):
            if kind == "Deployment":
                result = merge_containers(result, patch)
            else:  # custom resources take a JSON merge patch: lists are replaced
                result = {**result, "spec": {**result["spec"], **patch["spec"]}}
    return result


def env_refs(deployment: Manifest) -> dict[str, dict[str, str]]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}


# -- compose -------------------------------------------------------------------


def test_compose_sends_the_api_and_workers_through_pgbouncer_and_listens_directly() -> None:
    env = {**example_env(), "DB_POOL_ADDRESS": "pgbouncer:6432"}
    services = compose()["services"]
    api = Settings.from_env(service_env(services["api"], env))
    worker = Settings.from_env(service_env(services["worker"], env))
    for settings, role in ((api, "taskqueue_api"), (worker, "taskqueue_worker")):
        url = urlsplit(settings.database_url)
        assert (url.username, url.hostname, url.port) == (role, "pgbouncer", 6432)
    direct = urlsplit(worker.direct_url)
    assert (direct.username, direct.hostname, direct.port) == ("taskqueue_worker", "postgres", 5432)
    assert direct.password == urlsplit(worker.database_url).password
    # Without the variable, nothing changes: straight to PostgreSQL.
    plain = Settings.from_env(service_env(services["worker"], example_env()))
    assert urlsplit(plain.database_url).hostname == "postgres"


def test_the_pgbouncer_profile_runs_the_shipped_configuration_in_transaction_mode() -> None:
    service = compose()["services"]["pgbouncer"]
    assert service["profiles"] == ["pgbouncer"]
    (mount,) = service["volumes"]
    source, target, mode = mount.split(":")
    config = ini((REPO / source).read_text())
    assert mode == "ro" and target in service["command"][0]
    assert config["pgbouncer"]["pool_mode"] == "transaction"
    assert config["pgbouncer"]["listen_port"] == "6432"
    assert config["pgbouncer"]["auth_file"] in service["command"][0]
    assert config["databases"]["taskqueue"].split() == [
        "host=postgres",
        "port=5432",
        "dbname=taskqueue",
    ]
    for role in ("taskqueue_api", "taskqueue_worker"):
        assert role in service["command"][0]


# -- kubernetes ----------------------------------------------------------------


def test_the_overlay_validates_with_its_patches_applied() -> None:
    for doc in overlay_docs("pgbouncer.yaml"):
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
        assert doc["metadata"]["namespace"] == NAMESPACE
    for name in ("taskqueue-worker", "taskqueue-api"):
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(patched("Deployment", name), version, strict=True)
    kustomization = overlay_docs("kustomization.yaml")[0]
    listed = [*kustomization["resources"], *(p["path"] for p in kustomization["patches"])]
    assert listed[0] == "../"
    on_disk = {p.name for p in OVERLAY.glob("*.yaml")}
    assert set(listed[1:]) == on_disk - {"kustomization.yaml", "secret.example.yaml"}


def test_workers_and_the_api_use_the_pooled_urls_and_workers_listen_directly() -> None:
    pooled, base = overlay_secret(), secret_example()
    (service,) = [d for d in overlay_docs("pgbouncer.yaml") if d["kind"] == "Service"]
    port = service["spec"]["ports"][0]["port"]
    worker = env_refs(patched("Deployment", "taskqueue-worker"))
    assert worker["DATABASE_URL"] == {"name": "taskqueue-pgbouncer", "key": "worker-database-url"}
    assert worker["TASKQUEUE_DIRECT_URL"] == {"name": "taskqueue", "key": "worker-database-url"}
    api = env_refs(patched("Deployment", "taskqueue-api"))
    assert api["DATABASE_URL"] == {"name": "taskqueue-pgbouncer", "key": "api-database-url"}
    assert "TASKQUEUE_DIRECT_URL" not in api  # no LISTEN in the API
    for key in ("api-database-url", "worker-database-url", "auditor-database-url"):
        url, direct = urlsplit(pooled[key]), urlsplit(base[key])
        assert (
            url.hostname is not None and url.hostname.split(".")[0] == service["metadata"]["name"]
        )
        assert url.port == port
        assert (url.username, url.path) == (direct.username, direct.path)
        assert f'"{url.username}"' in pooled["userlist.txt"]
        assert url.password == "CHANGE-ME"


def test_keda_reads_through_pgbouncer_in_the_simple_protocol() -> None:
    trigger = patched("TriggerAuthentication", "taskqueue-postgres")
    (ref,) = trigger["spec"]["secretTargetRef"]
    assert (ref["name"], ref["key"]) == ("taskqueue-pgbouncer", "auditor-database-url")
    query = parse_qs(urlsplit(overlay_secret()["auditor-database-url"]).query)
    assert query["default_query_exec_mode"] == ["simple_protocol"]


def test_the_cluster_and_compose_configurations_pool_alike() -> None:
    (config_map,) = [d for d in overlay_docs("pgbouncer.yaml") if d["kind"] == "ConfigMap"]
    cluster = ini(config_map["data"]["pgbouncer.ini"])["pgbouncer"]
    local = ini((REPO / "deploy" / "pgbouncer" / "pgbouncer.ini").read_text())["pgbouncer"]
    assert {k: cluster[k] for k in POOLING_KEYS} == {k: local[k] for k in POOLING_KEYS}
    deployment = the_overlay("Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert container["command"][-1].startswith(mounts["config"])
    assert cluster["auth_file"].startswith(mounts["secret"])


def the_overlay(kind: str) -> Manifest:
    (doc,) = [d for d in overlay_docs("pgbouncer.yaml") if d["kind"] == kind]
    return doc


@pytest.fixture
def bouncer(pg_server: str) -> Iterator[Bouncer]:
    with running_pgbouncer(pg_server, pool_size=2) as running:
        yield running


async def test_the_keda_queries_count_through_a_real_pgbouncer(
    database_url: str, bouncer: Bouncer, tq: TaskQueue
) -> None:
    await tq.enqueue_many([NewTask(type="noop") for _ in range(7)])
    pool = await db.create_pool(bouncer.through(database_url), min_size=1, max_size=4)
    try:
        counts = {name: await pool.fetchval(sql) for name, sql in keda_queries().items()}
    finally:
        await pool.close()
    assert counts == {"due-queued": 7, "in-flight": 0}


async def test_each_role_works_through_pgbouncer_under_its_own_settings(
    pg_server: str, dsns: Dsns
) -> None:
    with running_pgbouncer(pg_server, pool_size=2, users=ROLES) as pooler:
        # PgBouncer logs in to the server as each role, so ALTER ROLE … SET holds.
        for name, timeout in (("api", "5s"), ("worker", "30s"), ("auditor", "1min")):
            pool = await db.create_pool(pooler.through(getattr(dsns, name)), max_size=1)
            try:
                assert await pool.fetchval("SHOW statement_timeout") == timeout, name
            finally:
                await pool.close()
        async with (
            running_worker(
                pooler.through(dsns.worker), direct_url=dsns.worker, concurrency=4
            ) as worker,
            api_client(pooler.through(dsns.api)) as client,
        ):
            assert worker.pooler.pooled is True and worker.listener is not None
            replies = [await client.post("/api/tasks", json={"type": "noop"}) for _ in range(20)]
            assert {r.status_code for r in replies} == {201}
            admin = await db.create_pool(dsns.admin, max_size=1)
            try:
                ids = [r.json()["id"] for r in replies]
                await wait_until(lambda: all_in_status(admin, ids, "succeeded"))
            finally:
                await admin.close()
        auditor = await db.create_pool(pooler.through(dsns.auditor), max_size=1)
        try:
            counts = {name: await auditor.fetchval(q) for name, q in keda_queries().items()}
        finally:
            await auditor.close()
    assert counts == {"due-queued": 0, "in-flight": 0}


__all__ = ["dsns", "passwords"]  # fixtures shared with test_deploy_roles
