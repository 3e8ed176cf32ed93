"""compose.yaml and the Containerfile, read as an engine would read them (no
engine needed): every command is a real `taskqueue` subcommand, every variable
is one the code reads, every file they copy or mount exists."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from taskqueue.api.auth import Authenticator, check_binding
from taskqueue.cli import build_parser
from taskqueue.config import ConfigError, Settings
from taskqueue.worker.process import INTERRUPT_GRACE_SECONDS
from tests.api_helpers import api_process, free_port

REPO = Path(__file__).resolve().parent.parent
SETTING_NAMES = {f"TASKQUEUE_{f.upper()}" for f in Settings.__struct_fields__}
# Read by the code outside Settings (taskqueue/db.py, taskqueue/cli/database.py).
OTHER_VARIABLES = {"DATABASE_URL", "TASKQUEUE_MIGRATIONS_DIR", "TASKQUEUE_DATA_DIR"}

_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class MissingVariable(KeyError):
    pass


def subcommand(argv: list[str]) -> str:
    """The `taskqueue` subcommand ``argv`` runs; fails the test if it is none."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        raise AssertionError(f"not a taskqueue command line: {argv}") from None
    return str(args.command)


def interpolate(value: str, env: Mapping[str, str], *, strict: bool = True) -> str:
    """Compose's ${NAME}, ${NAME:-default}, ${NAME:?error} and $$ escapes.
    ``strict=False``: a missing required variable becomes "" instead of an error."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"] or "", match["arg"] or ""
        value = env.get(name)
        if value is not None and (value != "" or not op.startswith(":")):
            return value
        if op.endswith("?") and strict:
            raise MissingVariable(f"{name}: {arg}")
        return arg if op.endswith("-") else ""

    return _VARIABLE.sub(substitute, value.replace("$$", "\0")).replace("\0", "$")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text())
    return loaded


def example_env() -> dict[str, str]:
    """deploy/compose.env.example, as compose reads a .env file."""
    env: dict[str, str] = {}
    for line in (REPO / "deploy" / "compose.env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def service_env(service: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    return {
        key: interpolate(str(value), env) for key, value in service.get("environment", {}).items()
    }


def taskqueue_services() -> dict[str, Any]:
    """The services that run the project's image."""
    return {name: s for name, s in compose()["services"].items() if "build" in s}


def test_compose_runs_the_four_parts_from_one_image() -> None:
    services = compose()["services"]
    # Without a profile: the observability profile is checked in its own tests.
    plain = {name for name, service in services.items() if "profiles" not in service}
    assert plain == {"postgres", "migrate", "roles", "api", "worker"}
    ours = taskqueue_services()
    assert set(ours) == {"migrate", "api", "worker"}
    assert len({s["image"] for s in ours.values()}) == 1
    for service in ours.values():
        build = service["build"]
        assert (REPO / build["context"] / build["dockerfile"]).is_file()


def test_every_service_command_is_a_real_taskqueue_subcommand() -> None:
    for name, service in taskqueue_services().items():
        assert subcommand(service["command"]) == name


def test_postgres_18_keeps_its_data_in_a_named_volume_and_reports_health() -> None:
    spec = compose()
    postgres = spec["services"]["postgres"]
    assert postgres["image"].split(":")[1].split(".")[0] == "18"
    # PostgreSQL 18 images want the volume at /var/lib/postgresql (data in 18/docker).
    (volume,) = postgres["volumes"]
    name, path = volume.split(":")
    assert path == "/var/lib/postgresql"
    assert name in spec["volumes"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert "ports" not in postgres, "the database is reachable only inside the project"


def test_parts_start_in_order_migrate_then_roles_then_api_and_workers() -> None:
    services = compose()["services"]

    def waits_for(name: str) -> dict[str, str]:
        return {dep: c["condition"] for dep, c in services[name]["depends_on"].items()}

    assert waits_for("migrate") == {"postgres": "service_healthy"}
    assert waits_for("roles") == {"migrate": "service_completed_successfully"}
    assert waits_for("api") == {"roles": "service_completed_successfully"}
    assert waits_for("worker") == {"roles": "service_completed_successfully"}
    for one_shot in ("migrate", "roles"):
        assert services[one_shot]["restart"] == "no"


def test_services_use_the_variables_the_code_reads_with_their_own_roles() -> None:
    env = example_env()
    services = compose()["services"]
    database = services["postgres"]["environment"]["POSTGRES_DB"]
    expected_user = {"migrate": "postgres", "api": "taskqueue_api", "worker": "taskqueue_worker"}
    for name, service in taskqueue_services().items():
        variables = service_env(service, env)
        assert set(variables) <= SETTING_NAMES | OTHER_VARIABLES, name
        settings = Settings.from_env(variables)  # every value parses
        url = urlsplit(settings.database_url)
        assert (url.username, url.hostname, url.path) == (
            expected_user[name],
            "postgres",
            f"/{database}",
        )
        assert url.password, f"{name}: no password in DATABASE_URL"


def test_no_secret_is_written_in_compose_yaml() -> None:
    # Every secret is required from the environment: without it compose refuses
    # to start instead of falling back to a default.
    text = (REPO / "compose.yaml").read_text()
    for variable in ("POSTGRES_PASSWORD", "API_DB_PASSWORD", "WORKER_DB_PASSWORD"):
        assert f"${{{variable}:?" in text
    api = compose()["services"]["api"]
    assert api["environment"]["TASKQUEUE_API_TOKENS"].startswith("${TASKQUEUE_API_TOKENS:?")
    for name, service in compose()["services"].items():
        for key, value in service.get("environment", {}).items():
            resolved = interpolate(str(value), {}, strict=False)
            if ("PASSWORD" in key or "TOKEN" in key) and not key.endswith("__FILE"):
                assert resolved == "", f"{name}.{key} has a default"
            if key == "DATABASE_URL":
                assert not urlsplit(resolved).password, f"{name}.{key} has a default password"


def test_the_api_binds_all_interfaces_only_with_a_token_and_publishes_its_port() -> None:
    api = compose()["services"]["api"]
    variables = service_env(api, example_env())
    settings = Settings.from_env(variables)
    assert settings.host == "0.0.0.0"
    check_binding(settings, Authenticator.from_settings(settings))
    without_token = Settings.from_env({k: v for k, v in variables.items() if "TOKEN" not in k})
    with pytest.raises(ConfigError, match="refusing to bind"):
        check_binding(without_token, Authenticator.from_settings(without_token))
    (published,) = api["ports"]
    # Loopback unless the operator publishes it wider (behind a TLS proxy).
    assert interpolate(published, {}) == f"127.0.0.1:{settings.port}:{settings.port}"


def test_workers_scale_out_and_get_longer_to_stop_than_their_shutdown_timeout() -> None:
    worker = compose()["services"]["worker"]
    assert not {"ports", "container_name"} & set(worker), "--scale needs no fixed name or port"
    settings = Settings.from_env(service_env(worker, example_env()))
    grace = worker["stop_grace_period"]
    assert grace.endswith("s")
    assert int(grace[:-1]) >= settings.shutdown_timeout + INTERRUPT_GRACE_SECONDS + 10
    assert worker["stop_signal"] == "SIGTERM"


def test_the_image_healthcheck_is_off_where_nothing_serves_http() -> None:
    services = compose()["services"]
    for name in ("migrate", "worker"):
        assert services[name]["healthcheck"] == {"disable": True}
    assert "healthcheck" not in services["api"]  # the image's own check of /health


def test_the_roles_step_runs_files_that_exist() -> None:
    roles = compose()["services"]["roles"]
    (mount,) = roles["volumes"]
    source, target, _mode = mount.split(":")
    command = " ".join(roles["command"])
    files = re.findall(rf"-f {re.escape(target)}/(\S+)", command)
    assert files == ["roles.sql", "compose-passwords.sql"]
    for name in files:
        assert (REPO / source / name).is_file()
    assert "--single-transaction" in command
    assert "ON_ERROR_STOP=1" in command


# --- Containerfile -----------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined."""
    joined: list[str] = []
    pending = ""
    for raw in (REPO / "Containerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, "dangling line continuation"
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined]


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction, args in instructions():
        if instruction == "FROM":
            found.append([])
        if found:
            found[-1].append((instruction, args))
    return found


def ignored() -> list[str]:
    return [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_the_image_is_built_in_stages_on_slim_python() -> None:
    found = stages()
    assert len(found) >= 2
    args = dict(a.split("=", 1) for i, a in instructions() if i == "ARG" and "=" in a)
    python = tuple(int(p) for p in args["PYTHON_VERSION"].split("."))
    assert python >= (3, 11)
    for stage in found:
        base = stage[0][1].split()[0]
        assert base == "python:${PYTHON_VERSION}-slim"
    for instruction, arguments in instructions():
        if instruction == "RUN":
            # Nothing fetched from anywhere but the package registry (via pip).
            assert not re.search(r"https?://|\bcurl\b|\bwget\b|\bgit\b|apt-get", arguments)


def test_the_runtime_stage_runs_taskqueue_as_a_non_root_user() -> None:
    final = stages()[-1]
    users = [args for instruction, args in final if instruction == "USER"]
    assert users
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    entrypoint = [json.loads(args) for instruction, args in final if instruction == "ENTRYPOINT"]
    assert entrypoint == [["taskqueue"]]
    (cmd,) = [json.loads(args) for instruction, args in final if instruction == "CMD"]
    assert subcommand(cmd) == "api"


def test_the_image_relies_on_packaged_migrations_and_checks_the_api_health() -> None:
    final = stages()[-1]
    env: dict[str, str] = {}
    for instruction, args in final:
        if instruction == "ENV":
            env.update(re.findall(r"(\w+)=(\S+)", args))
    # The migrations are package data of the installed wheel: nothing copied
    # beside it, no directory override that could point at a stale copy.
    assert "TASKQUEUE_MIGRATIONS_DIR" not in env
    assert env["TASKQUEUE_HOST"] == "0.0.0.0"
    (exposed,) = [args for instruction, args in final if instruction == "EXPOSE"]
    assert exposed == env["TASKQUEUE_PORT"] == str(Settings().port)
    assert "/health" in " ".join(healthcheck())


def healthcheck() -> list[str]:
    """The image's HEALTHCHECK command (exec form)."""
    (check,) = [args for instruction, args in stages()[-1] if instruction == "HEALTHCHECK"]
    _options, _, command = check.partition(" CMD ")
    argv: list[str] = json.loads(command)
    return argv


async def test_the_image_healthcheck_passes_against_a_running_api_and_fails_without_one(
    database_url: str, tmp_path: Path
) -> None:
    python, *rest = healthcheck()
    assert python == "python"
    argv = [sys.executable, *rest]
    async with api_process(database_url, tmp_path / "api.log") as (base, _):
        port = urlsplit(base).port
        assert port is not None
        up = await run(argv, TASKQUEUE_PORT=str(port))
    assert up == 0
    assert await run(argv, TASKQUEUE_PORT=str(free_port())) != 0


async def run(argv: list[str], **env: str) -> int:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(proc.wait(), 30)


def test_everything_the_image_copies_exists_and_is_in_the_build_context() -> None:
    patterns = ignored()
    for instruction, args in instructions():
        if instruction != "COPY" or args.startswith("--from"):
            continue
        *sources, _destination = args.split()
        for source in sources:
            assert (REPO / source).exists(), source
            top = source.rstrip("/").split("/")[0]
            assert not any(p.rstrip("/") in (top, f"/{top}") for p in patterns), source


def test_the_ignore_files_keep_local_state_out_of_the_build() -> None:
    assert (REPO / ".containerignore").read_text() == (REPO / ".dockerignore").read_text()
    assert {".venv/", ".taskqueue/", ".git/"} <= set(ignored())
