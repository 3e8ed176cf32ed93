"""deploy/prometheus, deploy/grafana, the compose profile `observability` and
deploy/kubernetes/monitoring, checked offline: promtool on the rules, their
unit tests and the scrape config; every metric the alerts and the dashboard
name is one the code exports; the pieces refer to each other correctly."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from taskqueue.api.auth import READ, Authenticator
from taskqueue.config import Settings
from taskqueue.observability.metrics import (
    ENQUEUED,
    HistoryGauges,
    HttpMetrics,
    QueueGauges,
    WorkerMetrics,
    build_registry,
)
from taskqueue.registry import Registry
from taskqueue.worker import Worker
from tests.promtool import run_promtool
from tests.test_deploy_compose import compose
from tests.test_deploy_kubernetes import config_map, secret_example, the

REPO = Path(__file__).resolve().parent.parent
PROMETHEUS = REPO / "deploy" / "prometheus"
GRAFANA = REPO / "deploy" / "grafana"
MONITORING = REPO / "deploy" / "kubernetes" / "monitoring"
DASHBOARD = GRAFANA / "dashboards" / "taskqueue.json"
_METRIC = re.compile(r"\b((?:taskqueue|process)_[a-z_]+)\b")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def exported_names() -> set[str]:
    """Every series name the API and a worker export (histograms with their
    _bucket/_count/_sum, counters with _total)."""
    worker = Worker(Settings(database_url="postgresql://x@localhost/x"), Registry())
    worker_metrics = WorkerMetrics()
    worker_metrics.read_from(worker.readings)
    history = HistoryGauges(max_age=0)
    history.default_partition_rows = 0  # served once a read has worked
    registry = build_registry(
        worker_metrics.collect,
        ENQUEUED.collect,
        HttpMetrics().collect,
        QueueGauges(max_age=0).collect,
        history.collect,
    )
    names: set[str] = set()
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_count", "_sum"),
        }.get(family.type, ("",))
        names |= {family.name + suffix for suffix in suffixes}
    return names


def alert_rules() -> list[dict[str, Any]]:
    (group,) = load(PROMETHEUS / "alerts.yml")["groups"]
    rules: list[dict[str, Any]] = group["rules"]
    return rules


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


# --- Prometheus --------------------------------------------------------------


def test_the_alert_rules_pass_promtool_and_each_alert_fires_in_its_unit_test() -> None:
    run_promtool("check", "rules", str(PROMETHEUS / "alerts.yml"))
    run_promtool("test", "rules", "alerts.test.yml", cwd=PROMETHEUS)
    tests = load(PROMETHEUS / "alerts.test.yml")["tests"]
    firing = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    quiet = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if not case.get("exp_alerts")
    }
    names = {rule["alert"] for rule in alert_rules()}
    assert names == {
        "TaskqueueQueueBackingUp",
        "TaskqueueFailureRatioHigh",
        "TaskqueueNoLiveWorkers",
        "TaskqueueRescuesSpiking",
        "TaskqueueDatabaseUnreachable",
        "TaskqueueEventsInDefaultPartition",
    }
    assert firing == names, "every alert is shown firing"
    assert quiet == names, "and every alert is shown quiet where it should be"
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert {"summary", "description"} <= set(rule["annotations"])


def test_alerts_and_the_dashboard_name_only_metrics_the_code_exports() -> None:
    exported = exported_names()
    named = {
        name
        for text in [rule["expr"] for rule in alert_rules()] + dashboard_exprs()
        for name in _METRIC.findall(text)
    }
    assert named, "no metric found in the expressions"
    assert named <= exported, f"not exported: {sorted(named - exported)}"
    # The list, all there.
    for name in (
        "taskqueue_tasks_enqueued_total",
        "taskqueue_tasks_finished_total",
        "taskqueue_task_duration_seconds_bucket",
        "taskqueue_task_wait_seconds_bucket",
        "taskqueue_worker_in_flight",
        "taskqueue_worker_capacity",
        "taskqueue_claim_statements_total",
        "taskqueue_claimed_tasks_total",
        "taskqueue_completion_statements_total",
        "taskqueue_completed_tasks_total",
        "taskqueue_lease_renewal_statements_total",
        "taskqueue_rescued_tasks_total",
        "taskqueue_stale_outcomes_total",
        "taskqueue_reconnects_total",
        "taskqueue_http_request_duration_seconds_bucket",
        "taskqueue_queue_depth",
        "taskqueue_queue_oldest_due_age_seconds",
        "taskqueue_workers_live",
    ):
        assert name in exported, name


def test_the_scrape_config_passes_promtool(tmp_path: Path) -> None:
    config = load(PROMETHEUS / "prometheus.yml")
    api, worker = config["scrape_configs"]
    secret_file = api["authorization"]["credentials_file"]
    # promtool wants the token file to exist: point it at a stand-in.
    token = tmp_path / "token"
    token.write_text("t" * 32)
    text = (PROMETHEUS / "prometheus.yml").read_text().replace(secret_file, str(token))
    (tmp_path / "prometheus.yml").write_text(text)
    for rule_file in config["rule_files"]:
        shutil.copy(PROMETHEUS / rule_file, tmp_path / rule_file)
    run_promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert api["metrics_path"] == worker["metrics_path"] == "/metrics"


# --- compose -----------------------------------------------------------------


def test_the_observability_profile_runs_prometheus_and_grafana_wired_to_the_services() -> None:
    spec = compose()
    services = spec["services"]
    profiled = {name for name, s in services.items() if "observability" in s.get("profiles", [])}
    assert profiled == {"prometheus", "grafana"}
    for name in profiled:
        assert services[name]["profiles"] == ["observability"]
        for port in services[name]["ports"]:
            assert port.startswith("127.0.0.1:"), f"{name} is published beyond loopback"
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), source
            else:
                assert source in spec["volumes"], source

    prometheus = services["prometheus"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    (config_path,) = [a.split("=", 1)[1] for a in prometheus["command"] if "config.file" in a]
    assert mounts[config_path] == "./deploy/prometheus/prometheus.yml"
    config = load(PROMETHEUS / "prometheus.yml")
    for rule_file in config["rule_files"]:
        assert (
            mounts[str(Path(config_path).parent / rule_file)] == f"./deploy/prometheus/{rule_file}"
        )

    api_job, worker_job = config["scrape_configs"]
    token_file = api_job["authorization"]["credentials_file"]
    (secret,) = prometheus["secrets"]
    assert token_file == f"/run/secrets/{secret}"
    assert spec["secrets"][secret] == {"environment": "PROMETHEUS_API_TOKEN"}
    (target,) = api_job["static_configs"][0]["targets"]
    api_settings = Settings.from_env(
        {k: str(v) for k, v in services["api"]["environment"].items() if "${" not in str(v)}
    )
    assert target == f"api:{api_settings.port}"
    (discovery,) = worker_job["dns_sd_configs"]
    assert discovery["names"] == ["worker"]
    worker_env = services["worker"]["environment"]
    assert int(worker_env["TASKQUEUE_METRICS_PORT"]) == discovery["port"]
    assert worker_env["TASKQUEUE_METRICS_HOST"] == "0.0.0.0"  # reachable from prometheus
    assert "ports" not in services["worker"], "worker metrics stay inside the project"

    grafana = services["grafana"]
    gmounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    assert gmounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    provider = load(GRAFANA / "provisioning" / "dashboards" / "taskqueue.yml")["providers"][0]
    assert gmounts[provider["options"]["path"]] == "./deploy/grafana/dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{DASHBOARD.name}"
    (password,) = grafana["secrets"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"] == f"/run/secrets/{password}"
    assert spec["secrets"][password] == {"environment": "GRAFANA_ADMIN_PASSWORD"}
    (datasource,) = load(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    assert any(p.endswith(":9090") for p in prometheus["ports"])


# --- Grafana -----------------------------------------------------------------


def test_the_dashboard_is_valid_promql_on_the_provisioned_data_source(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    (datasource,) = load(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["current"]["value"] == datasource["uid"]
    assert dashboard["uid"] == "taskqueue"
    titles = {panel["title"] for panel in dashboard["panels"]}
    for wanted in (
        "Attempts finished by outcome",
        "Handler duration",
        "Due tasks by queue",
        "Oldest due task's age by queue",
        "Live workers",
        "Reconnects by component",
    ):
        assert wanted in titles
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    # promtool parses PromQL in rule files: every query, as a recording rule.
    grafana_variables = {"$__rate_interval": "5m", "$queue": ".*"}
    rules = []
    for number, expr in enumerate(dashboard_exprs()):
        for variable, stand_in in grafana_variables.items():
            expr = expr.replace(variable, stand_in)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query_{number}", "expr": expr})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    output = run_promtool("check", "rules", str(path))
    assert f"{len(rules)} rules found" in output


# --- Kubernetes ----------------------------------------------------------------


def monitoring() -> dict[str, dict[str, Any]]:
    return {
        path.name: load(path)
        for path in sorted(MONITORING.glob("*.yaml"))
        if path.name != "kustomization.yaml"
    }


def test_the_monitoring_manifests_are_listed_and_only_use_the_operators_fields() -> None:
    kustomization = load(MONITORING / "kustomization.yaml")
    assert set(kustomization["resources"]) == set(monitoring())
    known = {
        "PodMonitor": {"selector", "podMetricsEndpoints"},
        "ServiceMonitor": {"selector", "endpoints"},
        "PrometheusRule": {"groups"},
    }
    endpoint_fields = {"port", "path", "interval", "scrapeTimeout", "authorization", "scheme"}
    kinds = []
    for name, doc in monitoring().items():
        assert doc["apiVersion"] == "monitoring.coreos.com/v1", name
        assert doc["metadata"]["namespace"] == "taskqueue", name
        kinds.append(doc["kind"])
        assert set(doc["spec"]) <= known[doc["kind"]], name
        for endpoint in doc["spec"].get("podMetricsEndpoints", []) + doc["spec"].get(
            "endpoints", []
        ):
            assert set(endpoint) <= endpoint_fields, name
    assert sorted(kinds) == ["PodMonitor", "PrometheusRule", "ServiceMonitor"]


def test_the_pod_monitor_scrapes_the_workers_metrics_port() -> None:
    (monitor,) = [d for d in monitoring().values() if d["kind"] == "PodMonitor"]
    worker = the("Deployment", "taskqueue-worker")
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"] == labels
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    settings = Settings.from_env(config_map())
    assert ports[endpoint["port"]] == settings.metrics_port
    assert settings.metrics_host == "0.0.0.0"  # reachable by Prometheus in the cluster


def test_the_service_monitor_reads_the_api_with_a_read_scoped_token() -> None:
    (monitor,) = [d for d in monitoring().values() if d["kind"] == "ServiceMonitor"]
    service = the("Service", "taskqueue-api")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    credentials = endpoint["authorization"]["credentials"]
    secrets = secret_example()
    assert credentials["name"] == the("Secret")["metadata"]["name"]
    token = secrets[credentials["key"]]
    api = Authenticator.from_settings(Settings(api_tokens=secrets["api-tokens"]))
    found = api.identify(token)
    assert found is not None, "the API must accept Prometheus's token"
    assert found[1] == {READ}, "read scope only"


def test_the_prometheus_rule_carries_the_same_rules_as_alerts_yml() -> None:
    (rule,) = [d for d in monitoring().values() if d["kind"] == "PrometheusRule"]
    assert rule["spec"]["groups"] == load(PROMETHEUS / "alerts.yml")["groups"]


@pytest.mark.parametrize("path", sorted(MONITORING.glob("*.yaml")), ids=lambda p: p.name)
def test_monitoring_yaml_is_one_document(path: Path) -> None:
    assert len([d for d in yaml.safe_load_all(path.read_text()) if d]) == 1
