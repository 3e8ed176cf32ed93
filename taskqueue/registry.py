"""Task types and their handlers: ``@registry.task("send_email", payload=EmailPayload)``.

A handler is an async function taking the decoded payload (an instance of the
declared msgspec Struct, or plain JSON values when none is declared) and a
``TaskContext``; whatever JSON-able value it returns is stored as the result."""

from __future__ import annotations

import importlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from taskqueue.backoff import Backoff
from taskqueue.errors import InvalidTask, UnknownTaskType, locate_validation_error


class TaskContext:
    """What a handler knows about the attempt it is running."""

    __slots__ = ("attempt", "max_retries", "queue", "task_id", "type", "worker_id")

    def __init__(
        self,
        *,
        task_id: uuid.UUID,
        type: str,
        queue: str,
        attempt: int,
        max_retries: int,
        worker_id: str,
    ) -> None:
        self.task_id = task_id
        self.type = type
        self.queue = queue
        self.attempt = attempt
        self.max_retries = max_retries
        self.worker_id = worker_id

    @property
    def logger(self) -> logging.Logger:
        """The ``taskqueue.task`` logger. While the handler runs, every record
        (of this logger or any other) carries the task's id, type, queue,
        attempt and worker (see ``taskqueue.logs``)."""
        return _handler_logger

    def __repr__(self) -> str:
        return f"TaskContext(task_id={self.task_id}, type={self.type!r}, attempt={self.attempt})"


_handler_logger = logging.getLogger("taskqueue.task")


Handler = Callable[[Any, TaskContext], Awaitable[Any]]
H = TypeVar("H", bound=Handler)


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A registered task type. ``None`` settings fall back to the queue's defaults."""

    name: str
    handler: Handler
    payload_type: Any = Any
    max_retries: int | None = None
    timeout_seconds: float | None = None
    backoff: Backoff | None = None
    queue: str | None = None
    priority: int | None = None

    def decode_payload(self, raw_json: str | bytes) -> Any:
        return msgspec.json.decode(raw_json, type=self.payload_type)

    def validate_payload(self, payload: Any) -> Any:
        """The payload converted to the declared type and back to JSON values;
        raises InvalidTask naming the offending field."""
        if self.payload_type is Any:
            try:
                msgspec.json.encode(payload)
            except (TypeError, msgspec.EncodeError) as exc:
                raise InvalidTask("payload", f"not JSON-serialisable: {exc}") from None
            return payload
        try:
            typed = msgspec.convert(payload, type=self.payload_type, strict=True)
        except msgspec.ValidationError as exc:
            field, message = locate_validation_error(str(exc), root="payload")
            raise InvalidTask(field, message) from None
        return msgspec.to_builtins(typed)


class Registry:
    """A set of task types. Workers run the handlers; producers use the same
    registry to check payloads before a task is stored."""

    def __init__(self) -> None:
        self._specs: dict[str, TaskSpec] = {}

    def task(
        self,
        name: str,
        *,
        payload: Any = Any,
        max_retries: int | None = None,
        timeout_seconds: float | None = None,
        backoff: Backoff | None = None,
        queue: str | None = None,
        priority: int | None = None,
    ) -> Callable[[H], H]:
        def register(handler: H) -> H:
            self.add(
                TaskSpec(
                    name=name,
                    handler=handler,
                    payload_type=payload,
                    max_retries=max_retries,
                    timeout_seconds=timeout_seconds,
                    backoff=backoff,
                    queue=queue,
                    priority=priority,
                )
            )
            return handler

        return register

    def add(self, spec: TaskSpec) -> None:
        if not spec.name:
            raise ValueError("a task type needs a name")
        existing = self._specs.get(spec.name)
        if existing is not None and existing.handler is not spec.handler:
            raise ValueError(f"task type {spec.name!r} is already registered")
        self._specs[spec.name] = spec

    def include(self, other: Registry) -> None:
        for spec in other._specs.values():
            self.add(spec)

    def get(self, name: str) -> TaskSpec | None:
        return self._specs.get(name)

    def require(self, name: str) -> TaskSpec:
        spec = self._specs.get(name)
        if spec is None:
            raise UnknownTaskType(name, self._specs)
        return spec

    def names(self) -> list[str]:
        return sorted(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __len__(self) -> int:
        return len(self._specs)


def load_registry(modules: Iterable[str], *, include_builtins: bool = True) -> Registry:
    """A registry of the built-in types plus each module's ``registry`` attribute."""
    combined = Registry()
    if include_builtins:
        from taskqueue.handlers import registry as builtins

        combined.include(builtins)
    for module_name in modules:
        module = importlib.import_module(module_name)
        found = getattr(module, "registry", None)
        if not isinstance(found, Registry):
            raise ValueError(
                f"handler module {module_name!r} has no `registry = taskqueue.Registry()`"
            )
        combined.include(found)
    return combined
