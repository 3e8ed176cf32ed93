"""deploy/kubernetes: every manifest validates against the Kubernetes schemas
(offline, strict: an unknown field is an error), the pieces refer to each other
correctly, and the KEDA scaler's queries count the right tasks in the real
schema."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from taskqueue import store
from taskqueue.api.auth import Authenticator, check_binding
from taskqueue.client import TaskQueue
from taskqueue.config import ConfigError, Settings
from taskqueue.worker.process import INTERRUPT_GRACE_SECONDS
from tests.helpers import seed_production_shape
from tests.test_deploy_compose import subcommand

REPO = Path(__file__).resolve().parent.parent
KUBERNETES = REPO / "deploy" / "kubernetes"
NAMESPACE = "taskqueue"
# The oldest Kubernetes these manifests promise to work on, and the newest the
# validator knows.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
}
# The PostgreSQL role each subcommand logs in as, by its Secret key.
ROLE_OF_SUBCOMMAND = {
    "api": ("api-database-url", "taskqueue_api"),
    "worker": ("worker-database-url", "taskqueue_worker"),
    "migrate": ("migrator-database-url", "taskqueue_migrator"),
}

Manifest = dict[str, Any]


def manifests() -> dict[str, list[Manifest]]:
    """Every YAML document under deploy/kubernetes, by file name."""
    found: dict[str, list[Manifest]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        found[path.name] = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def the(kind: str, name: str | None = None) -> Manifest:
    """The one manifest of ``kind`` (named ``name``)."""
    matches = [
        doc
        for docs in manifests().values()
        for doc in docs
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def config_map() -> dict[str, str]:
    data: dict[str, str] = the("ConfigMap", "taskqueue")["data"]
    return data


def secret_example() -> dict[str, str]:
    data: dict[str, str] = the("Secret", "taskqueue")["stringData"]
    return data


def keda_queries() -> dict[str, str]:
    """The ScaledObject's PostgreSQL trigger queries, by trigger name."""
    triggers = the("ScaledObject")["spec"]["triggers"]
    return {t["name"]: t["metadata"]["query"] for t in triggers}


def pod_specs() -> dict[str, Manifest]:
    """Pod templates of the Deployments and the Job, by workload name."""
    return {
        doc["metadata"]["name"]: doc["spec"]["template"]["spec"]
        for docs in manifests().values()
        for doc in docs
        if doc["kind"] in ("Deployment", "Job")
    }


def containerfile_uid() -> int:
    users = re.findall(r"^USER\s+(\d+)", (REPO / "Containerfile").read_text(), re.MULTILINE)
    assert users, "Containerfile sets no numeric USER"
    return int(users[-1].split(":")[0])


def test_every_manifest_validates_against_the_kubernetes_schemas() -> None:
    kinds: list[str] = []
    for name, docs in manifests().items():
        assert docs, f"{name} is empty"
        for doc in docs:
            kinds.append(doc["kind"])
            if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
                continue  # custom resources: checked on their own below
            for version in KUBERNETES_VERSIONS:
                kubernetes_validate.validate(doc, version, strict=True)
            if doc["kind"] != "Namespace":
                assert doc["metadata"]["namespace"] == NAMESPACE, f"{name}: {doc['kind']}"
    assert sorted(kinds) == sorted(
        [
            "ConfigMap",
            "Deployment",
            "Deployment",
            "Job",
            "Kustomization",
            "Namespace",
            "PodDisruptionBudget",
            "PodDisruptionBudget",
            "ScaledObject",
            "Secret",
            "Service",
            "TriggerAuthentication",
        ]
    )


def test_the_validator_rejects_a_misspelt_field() -> None:
    # The check above is only worth something if a typo fails it.
    broken = copy.deepcopy(the("Deployment", "taskqueue-api"))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["livenesProbe"] = container.pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_kustomization_applies_every_manifest_except_the_secret_example() -> None:
    kustomization = the("Kustomization")
    listed = kustomization["resources"]
    on_disk = {p.name for p in KUBERNETES.glob("*.yaml")}
    assert set(listed) == on_disk - {"kustomization.yaml", "secret.example.yaml"}
    assert [image["name"] for image in kustomization["images"]] == ["taskqueue"]


def test_the_secret_example_holds_no_secret() -> None:
    for key, value in secret_example().items():
        if key.endswith("database-url"):
            password = urlsplit(value).password
            assert password == "CHANGE-ME", key
        else:
            assert value.startswith("CHANGE-ME"), key


def test_pods_run_real_subcommands_as_their_own_role_with_settings_the_code_reads() -> None:
    settings_names = {f"TASKQUEUE_{f.upper()}" for f in Settings.__struct_fields__}
    data = config_map()
    assert set(data) <= settings_names
    settings = Settings.from_env(data)  # every value parses
    secrets = secret_example()
    subcommands: set[str] = set()
    for workload, pod in pod_specs().items():
        assert pod["automountServiceAccountToken"] is False, workload
        assert pod["securityContext"]["runAsNonRoot"] is True, workload
        assert pod["securityContext"]["runAsUser"] == containerfile_uid(), workload
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, workload
        (container,) = pod["containers"]
        assert container["image"].split(":")[0] == "taskqueue", workload
        command = subcommand(container["args"])
        subcommands.add(command)
        assert [ref["configMapRef"]["name"] for ref in container["envFrom"]] == ["taskqueue"]
        env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
        assert set(env) <= settings_names | {"DATABASE_URL"}, workload
        for ref in env.values():
            assert ref["name"] == "taskqueue"
            assert ref["key"] in secrets, f"{workload}: no {ref['key']} in the Secret example"
        key, role = ROLE_OF_SUBCOMMAND[command]
        assert env["DATABASE_URL"]["key"] == key, workload
        assert urlsplit(secrets[key]).username == role
        assert "sslmode=verify-full" in secrets[key]
        resources = container["resources"]
        for bound in ("requests", "limits"):
            assert set(resources[bound]) == {"cpu", "memory"}, f"{workload} {bound}"
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"] == {"drop": ["ALL"]}
    assert subcommands == {"api", "worker", "migrate"}
    assert settings.port == 8000


def test_the_api_is_probed_on_health_and_ready_and_served_by_its_service() -> None:
    deployment = the("Deployment", "taskqueue-api")
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    (port,) = container["ports"]
    assert port["containerPort"] == Settings.from_env(config_map()).port
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": port["name"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": port["name"]}
    # Bound to every interface, which the API allows only with a token.
    secrets = secret_example()
    env = {
        **config_map(),
        **{e["name"]: secrets[e["valueFrom"]["secretKeyRef"]["key"]] for e in container["env"]},
    }
    settings = Settings.from_env(env)
    assert settings.host == "0.0.0.0"
    check_binding(settings, Authenticator.from_settings(settings))
    without_token = Settings.from_env({k: v for k, v in env.items() if "TOKEN" not in k})
    with pytest.raises(ConfigError, match="refusing to bind"):
        check_binding(without_token, Authenticator.from_settings(without_token))
    assert deployment["spec"]["replicas"] >= 2
    service = the("Service", "taskqueue-api")
    assert service["spec"]["selector"] == pod["metadata"]["labels"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [port["name"]]


def test_workers_get_longer_to_stop_than_their_shutdown_timeout() -> None:
    deployment = the("Deployment", "taskqueue-worker")
    assert "replicas" not in deployment["spec"], "KEDA owns the worker count"
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    shutdown = Settings.from_env(config_map()).shutdown_timeout
    # Finish for shutdown_timeout, interrupt and unwind, then record outcomes.
    assert grace >= shutdown + INTERRUPT_GRACE_SECONDS + 10


def test_disruption_budgets_cover_the_api_and_the_workers() -> None:
    for name in ("taskqueue-api", "taskqueue-worker"):
        budget = the("PodDisruptionBudget", name)
        labels = the("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"] == labels
    api = the("PodDisruptionBudget", "taskqueue-api")["spec"]
    assert 1 <= api["minAvailable"] < the("Deployment", "taskqueue-api")["spec"]["replicas"]
    assert "maxUnavailable" in the("PodDisruptionBudget", "taskqueue-worker")["spec"]


# What KEDA (2.x) accepts: its CRD prunes unknown fields silently, so a typo
# would be lost without a word. The trigger metadata keys are the PostgreSQL
# scaler's.
SCALED_OBJECT_SPEC = {
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "initialCooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
}
TRIGGER_FIELDS = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}
POSTGRESQL_METADATA = {
    "query",
    "targetQueryValue",
    "activationTargetQueryValue",
    "connectionFromEnv",
    "host",
    "port",
    "userName",
    "dbName",
    "sslmode",
    "passwordFromEnv",
}


def test_the_scaled_object_is_a_keda_postgresql_scaler_for_the_workers() -> None:
    scaled = the("ScaledObject", "taskqueue-worker")
    spec = scaled["spec"]
    assert set(spec) <= SCALED_OBJECT_SPEC
    worker = the("Deployment", "taskqueue-worker")
    assert spec["scaleTargetRef"] == {
        "apiVersion": worker["apiVersion"],
        "kind": worker["kind"],
        "name": worker["metadata"]["name"],
    }
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert set(spec["advanced"]) <= {
        "horizontalPodAutoscalerConfig",
        "restoreToOriginalReplicaCount",
    }
    # The HPA behaviour KEDA passes on, checked against the real HPA schema.
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "keda-hpa-taskqueue-worker", "namespace": NAMESPACE},
        "spec": {
            "scaleTargetRef": spec["scaleTargetRef"],
            "minReplicas": spec["minReplicaCount"],
            "maxReplicas": spec["maxReplicaCount"],
            "behavior": spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"],
        },
    }
    kubernetes_validate.validate(hpa, KUBERNETES_VERSIONS[0], strict=True)

    auth = the("TriggerAuthentication", "taskqueue-postgres")
    assert set(auth["spec"]) == {"secretTargetRef"}
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "connection"
    assert ref["name"] == the("Secret")["metadata"]["name"]
    assert urlsplit(secret_example()[ref["key"]]).username == "taskqueue_auditor"

    queues = config_map()["TASKQUEUE_QUEUES"]
    concurrency = Settings.from_env(config_map()).concurrency
    names = []
    for trigger in spec["triggers"]:
        assert set(trigger) <= TRIGGER_FIELDS
        assert trigger["type"] == "postgresql"
        assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
        metadata = trigger["metadata"]
        assert set(metadata) <= POSTGRESQL_METADATA
        assert all(isinstance(v, str) for v in metadata.values()), "metadata values are strings"
        assert float(metadata["targetQueryValue"]) > 0
        # Counts only the queues these workers claim from.
        (literal,) = re.findall(r"string_to_array\('([^']*)', ','\)", metadata["query"])
        assert literal == queues
        names.append(trigger["name"])
    assert names == ["due-queued", "in-flight"]
    in_flight = spec["triggers"][1]["metadata"]
    assert float(in_flight["targetQueryValue"]) == concurrency


def test_the_migration_job_runs_once_to_completion() -> None:
    job = the("Job", "taskqueue-migrate")
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1
    assert "ttlSecondsAfterFinished" in job["spec"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert subcommand(container["args"]) == "migrate"


async def test_the_keda_queries_count_due_queued_and_running_tasks(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    due = [await tq.enqueue("noop") for _ in range(3)]
    await tq.enqueue("noop", delay=3600)  # scheduled: not due yet
    await tq.cancel((await tq.enqueue("noop")).id)
    other = [await tq.enqueue("noop", queue="other") for _ in range(2)]  # not our queue
    running = [await tq.enqueue("noop", priority=10) for _ in range(2)]
    claimed = await store.claim_tasks(pool, ["default"], 2, "worker-1", 30, types=["noop"])
    assert {c.id for c in claimed} == {t.id for t in running}
    assert len(await store.claim_tasks(pool, ["other"], 1, "worker-2", 30, types=["noop"])) == 1
    assert len(due) == 3
    assert len(other) == 2

    counts: dict[str, int] = {}
    for name, query in keda_queries().items():
        rows = await pool.fetch(query)
        assert len(rows) == 1
        assert len(rows[0]) == 1, "KEDA reads one number"
        counts[name] = rows[0][0]
    assert counts == {"due-queued": 3, "in-flight": 2}
    (default,) = [q for q in (await tq.stats()).queues if q.queue == "default"]
    assert counts["due-queued"] == default.due_tasks


async def test_the_keda_queries_walk_the_partial_indexes(pool: asyncpg.Pool) -> None:
    # A table the way production sees it: mostly finished tasks, a backlog, a
    # few running. The scaler's cost must follow the backlog, not the history.
    await seed_production_shape(pool, backlog=50, claimed=10)
    plans = {
        name: "\n".join(r[0] for r in await pool.fetch(f"EXPLAIN {query}"))
        for name, query in keda_queries().items()
    }
    assert "tasks_claim_idx" in plans["due-queued"]
    assert "tasks_lease_idx" in plans["in-flight"]
    assert "Seq Scan" not in "".join(plans.values())
