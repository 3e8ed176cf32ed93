"""Task types and their handlers: ``@registry.task("send_email", payload=EmailPayload)``.

A handler is an async function taking the decoded payload (an instance of the
declared msgspec Struct, or plain JSON values when none is declared) and a
``TaskContext``; whatever JSON-able value it returns is stored as the result.

Middleware wraps handlers: ``async def mw(ctx, payload, call_next)`` runs
around ``await call_next(ctx, payload)`` (see ``taskqueue.middleware``).
``registry.use(mw)`` wraps every handler of that registry, outermost;
``@registry.task(..., middleware=[...])`` wraps one type inside those. Each
list runs in its order, the first outermost."""

from __future__ import annotations

import importlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, Unpack

import msgspec

from taskqueue.backoff import Backoff
from taskqueue.errors import (
    InvalidTask,
    ParentResultsNotRequested,
    UnknownTaskType,
    locate_validation_error,
)
from taskqueue.models import NewSchedule
from taskqueue.retry_policy import BackoffFunction, ExceptionClasses, RetryPolicy
from taskqueue.schedules.definition import ScheduleFields, define


class TaskContext:
    """What a handler knows about the attempt it is running."""

    __slots__ = (
        "_parent_results",
        "_parents_json",
        "_reads_parents",
        "attempt",
        "max_retries",
        "queue",
        "task_id",
        "tenant",
        "type",
        "worker_id",
    )

    def __init__(
        self,
        *,
        task_id: uuid.UUID,
        type: str,
        queue: str,
        attempt: int,
        max_retries: int,
        worker_id: str,
        tenant: str | None = None,
        parent_results: str | None = None,
        reads_parents: bool | None = None,
    ) -> None:
        # reads_parents: the type was registered with parent_results=True, so
        # the claim read the parents' outcomes (``parent_results``). None:
        # read them when they were given (a handler's own tests build a
        # context with them).
        self._parents_json = parent_results
        self._reads_parents = parent_results is not None if reads_parents is None else reads_parents
        self._parent_results: dict[str, dict[str, Any]] | None = None
        self.task_id = task_id
        self.type = type
        self.queue = queue
        self.attempt = attempt
        self.max_retries = max_retries
        self.worker_id = worker_id
        self.tenant = tenant  # the tenant the task belongs to (None: none)

    @property
    def parent_results(self) -> dict[str, dict[str, Any]]:
        """The outcome of each parent (dependency) of this task, keyed by the
        parent's workflow ref, or by its id as text when it has no ref: a dict
        with ``id``, ``ref``, ``status`` (succeeded, failed, cancelled; None
        when the parent was deleted), ``result`` and ``error``. Empty for a
        task without parents. Read when the attempt was claimed, and only for
        types registered with ``parent_results=True``: for any other type this
        raises ``ParentResultsNotRequested`` (a Permanent failure naming the
        fix) rather than pretend the task had no parents."""
        if not self._reads_parents:
            raise ParentResultsNotRequested(self.type)
        if self._parent_results is None:
            parents = msgspec.json.decode(self._parents_json) if self._parents_json else []
            self._parent_results = {p["ref"] or p["id"]: p for p in parents}
        return self._parent_results

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
Next = Callable[[TaskContext, Any], Awaitable[Any]]
Middleware = Callable[[TaskContext, Any, Next], Awaitable[Any]]


def chain(middleware: Sequence[Middleware], handler: Handler) -> Handler:
    """``handler`` wrapped in ``middleware``, the first outermost; the
    handler itself when there is none, so that no middleware costs nothing."""
    if not middleware:
        return handler

    def call_handler(ctx: TaskContext, payload: Any) -> Awaitable[Any]:
        return handler(payload, ctx)

    call: Next = call_handler
    for one in reversed(middleware):
        call = _link(one, call)
    outermost = call

    def run(payload: Any, ctx: TaskContext) -> Awaitable[Any]:
        return outermost(ctx, payload)

    return run


def _link(middleware: Middleware, call_next: Next) -> Next:
    # A plain function returning the middleware's coroutine: one coroutine
    # per middleware, none for the link.
    def call(ctx: TaskContext, payload: Any) -> Awaitable[Any]:
        return middleware(ctx, payload, call_next)

    return call


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
    # retry_on, discard_on, max_elapsed, per-exception and custom backoff;
    # None: every failure retries while attempts are left, after ``backoff``.
    retry: RetryPolicy | None = None
    # This type's middleware, then its registry's (``Registry.use``), which
    # runs outside it; ``run`` is the handler inside both.
    middleware: tuple[Middleware, ...] = ()
    # The handler reads ctx.parent_results: the claim reads this type's
    # parents' outcomes (other types' claims skip that read).
    parent_results: bool = False
    registry_middleware: tuple[Middleware, ...] = field(default=(), compare=False)
    run: Handler = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        outer_first = (*self.registry_middleware, *self.middleware)
        object.__setattr__(self, "run", chain(outer_first, self.handler))

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
        self._schedules: dict[str, NewSchedule] = {}
        self._middleware: tuple[Middleware, ...] = ()

    def use(self, *middleware: Middleware) -> None:
        """Wrap every handler of this registry, registered before or after,
        in ``middleware``: the first ever added is the outermost, and all of
        them run outside each type's own (``task(..., middleware=)``)."""
        self._middleware += middleware
        self._specs = {
            name: replace(spec, registry_middleware=self._middleware)
            for name, spec in self._specs.items()
        }

    def task(
        self,
        name: str,
        *,
        payload: Any = Any,
        max_retries: int | None = None,
        timeout_seconds: float | None = None,
        backoff: Backoff | BackoffFunction | None = None,
        queue: str | None = None,
        priority: int | None = None,
        middleware: Sequence[Middleware] = (),
        retry_on: ExceptionClasses | type[BaseException] = (),
        discard_on: ExceptionClasses | type[BaseException] = (),
        max_elapsed: float | None = None,
        backoff_on: Mapping[type[BaseException], Backoff | float] | None = None,
        parent_results: bool = False,
    ) -> Callable[[H], H]:
        """Register the decorated handler as type ``name``. ``middleware``
        wraps this type only, inside the registry's (``use``).
        ``parent_results=True``: the handler reads ``ctx.parent_results``
        (its dependencies' outcomes), which the claim then reads for it;
        without it, reading ``ctx.parent_results`` fails the task.

        Retry policy (``taskqueue.retry_policy`` has the precedence):
        ``retry_on`` retries only these exceptions, ``discard_on`` fails at
        once on these, ``max_elapsed`` schedules no retry due later than
        that many seconds after the task's created_at, ``backoff_on`` maps
        exception classes to a ``Backoff`` or fixed seconds, and ``backoff``
        is a ``Backoff`` or a function ``(attempt, exception) -> seconds``."""
        policy = RetryPolicy.build(
            retry_on=retry_on,
            discard_on=discard_on,
            max_elapsed=max_elapsed,
            backoff_on=backoff_on,
            backoff_function=None if backoff is None or isinstance(backoff, Backoff) else backoff,
        )

        def register(handler: H) -> H:
            self.add(
                TaskSpec(
                    name=name,
                    handler=handler,
                    payload_type=payload,
                    max_retries=max_retries,
                    timeout_seconds=timeout_seconds,
                    backoff=backoff if isinstance(backoff, Backoff) else None,
                    queue=queue,
                    priority=priority,
                    retry=policy,
                    middleware=tuple(middleware),
                    parent_results=parent_results,
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
        if spec.registry_middleware != self._middleware:
            spec = replace(spec, registry_middleware=self._middleware)
        self._specs[spec.name] = spec

    def include(self, other: Registry) -> None:
        """Add ``other``'s types and schedules. Its middleware (``use``) stays
        around its own handlers only, inside this registry's."""
        for spec in other._specs.values():
            if spec.registry_middleware:
                spec = replace(
                    spec,
                    middleware=(*spec.registry_middleware, *spec.middleware),
                    registry_middleware=(),
                )
            self.add(spec)
        for schedule in other._schedules.values():
            self.add_schedule(schedule)

    def get(self, name: str) -> TaskSpec | None:
        return self._specs.get(name)

    def require(self, name: str) -> TaskSpec:
        spec = self._specs.get(name)
        if spec is None:
            raise UnknownTaskType(name, self._specs)
        return spec

    def names(self) -> list[str]:
        return sorted(self._specs)

    def parent_result_types(self) -> list[str]:
        """The types whose handlers read ``ctx.parent_results``
        (``parent_results=True``): the only ones whose claim reads parents."""
        return sorted(name for name, spec in self._specs.items() if spec.parent_results)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __len__(self) -> int:
        return len(self._specs)

    def periodic(
        self,
        cron: str | None = None,
        *,
        name: str,
        type: str | None = None,
        **fields: Unpack[ScheduleFields],
    ) -> Callable[[H], H]:
        """Run the decorated handler on a schedule named ``name``: put it
        above ``@registry.task(...)`` to fire that type, or use it alone to
        register the handler as a type named ``type`` (default: ``name``).
        The other fields are ``schedule``'s. Workers that load the module
        make sure the schedule exists."""

        def register(handler: H) -> H:
            task_type = type or next(
                (spec.name for spec in self._specs.values() if spec.handler is handler), None
            )
            if task_type is None or task_type not in self._specs:
                task_type = task_type or name
                self.add(TaskSpec(name=task_type, handler=handler))
            self.schedule(name, type=task_type, cron=cron, **fields)
            return handler

        return register

    def schedule(
        self,
        name: str,
        *,
        type: str,
        cron: str | None = None,
        **fields: Unpack[ScheduleFields],
    ) -> NewSchedule:
        """Define a recurring task of ``type`` in code: ``cron`` (5 fields, 6
        with leading seconds, or an @alias, in ``timezone``) or
        ``every_seconds``, and the task settings (``payload``, ``queue``,
        ``priority``, ``max_retries``, ``timeout_seconds``; unset ones are the
        type's), ``catch_up`` and ``overlap`` (see ``ScheduleFields``). The
        expression and zone are checked now, so a mistake fails the import
        rather than a worker."""
        new = define(name, type=type, cron=cron, **fields)
        self.add_schedule(new)
        return new

    def add_schedule(self, schedule: NewSchedule) -> None:
        existing = self._schedules.get(schedule.name)
        if existing is not None and existing != schedule:
            raise ValueError(f"schedule {schedule.name!r} is already defined differently")
        self._schedules[schedule.name] = schedule

    def schedules(self) -> list[NewSchedule]:
        """The schedules defined in code, by name."""
        return [self._schedules[name] for name in sorted(self._schedules)]


# The built-in types are handler modules like any other.
BUILTINS = ("taskqueue.handlers", "taskqueue.callback_delivery")


def load_registry(modules: Iterable[str], *, include_builtins: bool = True) -> Registry:
    """A registry of the built-in types plus each module's ``registry`` attribute.

    Modules are loaded by name, the built-in ones too: the built-in types
    import this module to register, like any handler module, and this
    module imports none of them."""
    combined = Registry()
    for module_name in [*BUILTINS, *modules] if include_builtins else modules:
        module = importlib.import_module(module_name)
        found = getattr(module, "registry", None)
        if not isinstance(found, Registry):
            raise ValueError(
                f"handler module {module_name!r} has no `registry = taskqueue.Registry()`"
            )
        combined.include(found)
    return combined
