"""How taskqueue processes log: one format for every part, and the task being
run as context on every record logged while it runs, whichever logger the
handler (or a library it calls) uses.

Two formats (TASKQUEUE_LOG_FORMAT): ``console`` for people, ``json`` for log
pipelines, one object per line with ``ts``, ``level``, ``logger``, ``msg``,
inside a task ``task_id``, ``type``, ``queue``, ``attempt`` and
``worker_id``, any ``extra={...}`` fields, and ``exc`` with a traceback.
This is the standard library's logging, not structlog: every library the
handlers call already logs through it, the task context rides on a context
variable that follows the handler into whatever it awaits, and one formatter
is all a JSON line needs, without a second logging API or a dependency.

Whatever the format, the configured secrets (the database password, API
tokens, the JWT secret) and the password of any URL in a message are masked,
and control characters in a message (a task's error, a name from a request)
are escaped (taskqueue.text), so no message can forge a line or drive the
terminal."""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import time
from collections.abc import Iterable
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

from taskqueue.text import escape_controls

if TYPE_CHECKING:
    from taskqueue.config import Settings
    from taskqueue.models import ClaimedTask

# Set by the executor around each handler call: (task, worker id). A context
# variable follows the handler into every coroutine it awaits.
running_task: ContextVar[tuple[ClaimedTask, str] | None] = ContextVar(
    "taskqueue_running_task", default=None
)

TASK_FIELDS = ("task_id", "task_type", "queue", "attempt", "worker_id")
MASK = "***"
# Secrets shorter than this are not masked: they would mangle every line.
MIN_SECRET_LENGTH = 4


class TaskContextFilter(logging.Filter):
    """Copies the running task's fields onto each record (``task_id``,
    ``task_type``, ``queue``, ``attempt``, ``worker_id``) at the moment it is
    logged. Installed on handlers, so records of every logger get them."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = running_task.get()
        if current is not None and not hasattr(record, "task_id"):
            task, worker_id = current
            record.task_id = str(task.id)
            record.task_type = task.type
            record.queue = task.queue
            record.attempt = task.attempt
            record.worker_id = worker_id
        return True


class Redactor:
    """Masks secrets in a formatted line: each one given (also as it looks
    percent-decoded and inside a JSON string) and the password of any
    ``scheme://user:password@`` URL."""

    _URL_PASSWORD = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^\s:/@]*:)[^\s@/]+@")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            for form in (secret, unquote(secret), msgspec.json.encode(secret).decode()[1:-1]):
                if len(form) >= MIN_SECRET_LENGTH:
                    forms.add(form)
        # Longest first, so that no secret is left half-masked by a shorter one.
        self._secrets = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if "://" in text:
            text = self._URL_PASSWORD.sub(rf"\1{MASK}@", text)
        return text


class ConsoleFormatter(logging.Formatter):
    """``time LEVEL logger: message`` and, inside a task, `` [task <id> <type>
    queue=<q> attempt=<n>]``."""

    def __init__(self, redact: Redactor | None = None) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._redact = redact or Redactor()

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return escape_controls(super().formatException(ei), keep_newlines=True)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        task_id = getattr(record, "task_id", None)
        if task_id is not None:
            suffix = (
                f" [task {task_id} {getattr(record, 'task_type', '?')}"
                f" queue={getattr(record, 'queue', '?')}"
                f" attempt={getattr(record, 'attempt', '?')}]"
            )
            # Keep a traceback after the context, on its own lines.
            head, sep, rest = text.partition("\n")
            text = f"{head}{suffix}{sep}{rest}"
        return self._redact(text)


# What every LogRecord has; anything else on a record came from `extra=`
# (except uvicorn's copy of its message with terminal colours).
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",
}
# Task fields: their name on a record, and in a JSON line.
_TASK_KEYS = dict(
    zip(TASK_FIELDS, ("task_id", "type", "queue", "attempt", "worker_id"), strict=True)
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self, redact: Redactor | None = None) -> None:
        super().__init__()
        self._redact = redact or Redactor()
        self._encode = msgspec.json.Encoder(enc_hook=repr).encode

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": escape_controls(record.getMessage()),
        }
        fields = record.__dict__
        for attribute, key in _TASK_KEYS.items():
            if attribute in fields:
                line[key] = fields[attribute]
        for key, value in fields.items():
            if key not in _RECORD_FIELDS and key not in _TASK_KEYS and key not in line:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return self._redact(self._encode(line).decode())


def secrets_of(settings: Settings) -> list[str]:
    """What must never appear in a log: the database password, the API
    tokens (from TASKQUEUE_API_TOKENS and its file) and the JWT secret."""
    found: list[str] = []
    url = urlsplit(settings.database_url)
    if url.password:
        found.append(url.password)
    for values in parse_qs(url.query).values():
        found.extend(values)  # password=…, and sslpassword: every value, to be safe
    entries = settings.api_tokens.split(",")
    if settings.api_tokens_file:
        # Unreadable: the API refuses to start over it, with a clear error.
        with contextlib.suppress(OSError):
            entries += Path(settings.api_tokens_file).read_text().splitlines()
    found.extend(entry.strip().partition(":")[0] for entry in entries if entry.strip())
    if settings.jwt_secret:
        found.append(settings.jwt_secret)
    return [secret for secret in found if secret]


def configure(
    verbose: bool = False,
    *,
    log_format: str = "console",
    level: str = "INFO",
    secrets: Iterable[str] = (),
) -> None:
    """Log to stderr in ``log_format`` (console or json) at ``level`` (DEBUG
    with ``verbose``), task context included and ``secrets`` masked."""
    redact = Redactor(secrets)
    json = log_format == "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redact) if json else ConsoleFormatter(redact))
    handler.addFilter(TaskContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else level.upper())
    for chatty in ("yoyo", "httpx", "httpcore", "asyncio"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    # Warnings become records too: in JSON, every line of stderr is an object.
    logging.captureWarnings(json)


def configure_from(settings: Settings, verbose: bool = False) -> None:
    """``configure`` with TASKQUEUE_LOG_FORMAT, TASKQUEUE_LOG_LEVEL and the
    secrets of ``settings``."""
    configure(
        verbose,
        log_format=settings.log_format,
        level=settings.log_level,
        secrets=secrets_of(settings),
    )
