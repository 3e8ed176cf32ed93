"""Settings, read once from TASKQUEUE_* environment variables and validated."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal

import msgspec

from taskqueue.backoff import Backoff, Jitter
from taskqueue.durations import parse_duration
from taskqueue.limits import MAX_QUEUE_LENGTH
from taskqueue.validation import queue_problem

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Retention(msgspec.Struct, frozen=True):
    """How long finished tasks (by status) and history (events) are kept."""

    succeeded: timedelta
    failed: timedelta
    cancelled: timedelta
    events: timedelta


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    database_url: str = ""
    # README "Connection poolers": DATABASE_URL may be a transaction pooler;
    # the server itself, when given here, carries LISTEN, migrations and
    # partition maintenance. The pooler: auto (detected), none, pgbouncer
    # (no named prepared statements), pgbouncer-prepared (1.21+ with
    # max_prepared_statements: asyncpg's statement cache stays on).
    direct_url: str = ""
    pooler: Literal["auto", "none", "pgbouncer", "pgbouncer-prepared"] = "auto"
    # worker
    queues: tuple[str, ...] = ("default",)
    concurrency: PositiveInt = 10
    # At most this many claimed rows wait for a free executor. Bigger batches
    # per claim mean fewer round trips; the worker prefetches only as many as
    # its executors get through in ~50 ms, so slow tasks are not hoarded.
    prefetch: Annotated[int, msgspec.Meta(ge=0)] = 200
    lease_seconds: PositiveFloat = 30.0
    shutdown_timeout: NonNegativeFloat = 30.0
    poll_interval: PositiveFloat = 1.0
    handlers: tuple[str, ...] = ()
    backoff_base: PositiveFloat = 1.0
    backoff_cap: PositiveFloat = 3600.0
    backoff_jitter: Jitter = Jitter.EQUAL
    complete_batch_size: PositiveInt = 1000
    complete_interval: NonNegativeFloat = 0.0
    # A handler's result, as JSON, at most this long: beyond it the task
    # fails for good (failure "result_too_large"). Default 1 MiB.
    max_result_bytes: PositiveInt = 1024 * 1024
    # Seconds between passes of the expiry sweep (queued tasks past expires_at).
    expiry_interval: PositiveFloat = 5.0
    # Seconds between ticks of the history's sealer (README: "The write
    # path and the history chain"): how long an event waits to be sealed.
    seal_interval: PositiveFloat = 1.0
    worker_id: str = ""
    heartbeat_seconds: PositiveFloat = 5.0
    # Retention (README: "Retention"): how long finished tasks stay, by how
    # they finished, and how long history stays. Durations: 3s, 12h, 7d, 2w.
    # Queues may override the task ones; workers prune, no leader.
    retain_succeeded: str = "1d"
    retain_failed: str = "14d"
    retain_cancelled: str = "7d"
    retain_events: str = "30d"
    # API
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    api_tokens: str = ""
    api_tokens_file: str = ""
    jwt_secret: str = ""
    max_body_bytes: PositiveInt = 256 * 1024
    # A request's head must arrive within this many seconds, its body within
    # this many after its head; then 408 and the connection closes.
    request_head_timeout: PositiveFloat = 10.0
    request_body_timeout: PositiveFloat = 30.0
    max_batch_size: PositiveInt = 1000
    api_pool_size: PositiveInt = 10
    jwt_audience: str = ""  # when set, JWTs must carry this `aud`
    jwt_issuer: str = ""  # when set, JWTs must carry this `iss`
    # Host names requests may carry besides loopback ones when auth is off
    # (a proxy in front), comma-separated; enforced with auth on too when set.
    allowed_hosts: str = ""
    # Dashboard sessions: the cookie's signing key (default: derived from the
    # tokens and JWT secret) and how long a sign-in lasts.
    session_secret: str = ""
    session_hours: Annotated[float, msgspec.Meta(gt=0, le=24 * 30)] = 12.0
    # Webhook destinations opened beyond the public internet: CIDRs and host
    # names, comma-separated (read by workers; see taskqueue.handlers).
    webhook_allow: str = ""
    # How much of a webhook's (or result callback's) answer a worker reads;
    # the rest is never read, and nothing is decompressed (taskqueue.outbound).
    webhook_max_response_bytes: PositiveInt = 1024 * 1024
    # Result callbacks are signed with this (Standard Webhooks, whsec_<base64>;
    # read by workers; see taskqueue.callbacks).
    callback_secret: str = ""
    # Observability (README: "Observability"). A worker serves /metrics on
    # metrics_port when set (0: any free port); the API serves it on its own port.
    metrics_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] | None = None
    metrics_host: str = "127.0.0.1"
    metrics_max_types: PositiveInt = 100  # distinct `type` labels; the rest count as "other"
    metrics_max_queues: PositiveInt = 100  # distinct `queue` labels; the rest count as "other"
    metrics_max_tenants: PositiveInt = 100  # distinct `tenant` labels; the rest: "other"
    metrics_cache_seconds: NonNegativeFloat = 10.0  # how long the API reuses its queue gauges
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"
    # The API logs each request (method, route, status, duration). Off by default:
    # at enqueue rates it is a line per task and ~8 % of the API's throughput;
    # /metrics counts every route's requests and durations either way.
    access_log: bool = False

    def __post_init__(self) -> None:
        if self.callback_secret:
            from taskqueue.callbacks import secret_key

            secret_key(self.callback_secret)  # a ValueError names the variable
        if self.webhook_allow:
            from taskqueue.destinations import DestinationPolicy

            DestinationPolicy.parse(self.webhook_allow)  # a ValueError names the variable
        for queue in self.queues:
            if problem := queue_problem(queue, max_length=MAX_QUEUE_LENGTH):
                raise ValueError(f"TASKQUEUE_QUEUES: {queue[:100]!r}: {problem}")
        if self.allowed_hosts:
            from taskqueue.http.hosts import parse_allowed_hosts

            parse_allowed_hosts(self.allowed_hosts)  # a ValueError names the variable
        for field in ("retain_succeeded", "retain_failed", "retain_cancelled", "retain_events"):
            try:
                parse_duration(getattr(self, field))
            except ValueError as exc:
                raise ValueError(f"TASKQUEUE_{field.upper()}: {exc}") from None
        if self.log_level.upper() not in LOG_LEVELS:
            raise ValueError(f"TASKQUEUE_LOG_LEVEL: one of {', '.join(LOG_LEVELS)}")

    @property
    def retention(self) -> Retention:
        """The retention settings, parsed."""
        return Retention(
            succeeded=parse_duration(self.retain_succeeded),
            failed=parse_duration(self.retain_failed),
            cancelled=parse_duration(self.retain_cancelled),
            events=parse_duration(self.retain_events),
        )

    @property
    def backoff(self) -> Backoff:
        return Backoff(base=self.backoff_base, cap=self.backoff_cap, jitter=self.backoff_jitter)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``TASKQUEUE_<FIELD>`` variables (DATABASE_URL also
        works unprefixed); keyword overrides win over the environment."""
        source = os.environ if env is None else env
        raw: dict[str, Any] = {}
        for field in cls.__struct_fields__:
            value = source.get(f"TASKQUEUE_{field.upper()}")
            if value is None and field == "database_url":
                value = source.get("DATABASE_URL")
            if value is None or value == "":
                continue
            raw[field] = _split(value) if field in ("queues", "handlers") else value
        raw.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return msgspec.convert(raw, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise ConfigError(_explain(str(exc))) from None

    def require_database_url(self) -> str:
        if not self.database_url:
            raise ConfigError("DATABASE_URL (or TASKQUEUE_DATABASE_URL) is not set")
        return self.database_url


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _explain(message: str) -> str:
    # msgspec says "Expected `int`, got `str` - at `$.concurrency`"; name the
    # environment variable, and say what was expected without msgspec's notation.
    head, sep, path = message.rpartition(" - at `$.")
    if not sep:
        return message.removesuffix(" - at `$`")
    field = path.split("`")[0].split("[")[0]
    head = head.replace(", got `str`", "").replace("`", "")
    return f"TASKQUEUE_{field.upper()}: {head[:1].lower()}{head[1:]}"


def mask_password(url: str) -> str:
    """A database URL fit for a banner, a log or an error: any password
    (``user:secret@`` or ``?password=secret``) replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    credentials, at, location = rest.rpartition("@")
    if at:
        user, colon, _ = credentials.partition(":")
        rest = f"{user}{':***' if colon else ''}@{location}"
    return f"{scheme}://{_PASSWORD_PARAMETER.sub(_MASKED, rest)}"


_PASSWORD_PARAMETER = re.compile(r"((?:^|[?&])password=)[^&]*", re.IGNORECASE)
_MASKED = r"\1***"
