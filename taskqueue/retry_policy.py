"""Retry policies of a task type: which failures retry, which end the task
at once, how long all its attempts may take, and how long to wait before
the next one. Pure: the executor asks ``decide`` and puts the answer (and
the rule that gave it) in the outcome; the completion statement records it.

Precedence, first match wins:

1. ``Permanent`` raised, or a payload that does not decode: failed now.
2. ``discard_on``: the exception is one of these classes: failed now.
3. ``retry_on``: set, and the exception is none of these classes: failed now.
4. ``max_retries``: no attempts left: failed.
5. ``max_elapsed``: the retry would be due later than ``created_at +
   max_elapsed``: failed (decided by the database, whose clock it is).

The delay of a retry: ``backoff_on`` (the entry for the most specific class
of the exception) > the custom backoff function > the type's ``Backoff`` >
the worker's default. A timeout counts as ``TimeoutError`` for every match."""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from taskqueue.backoff import Backoff
from taskqueue.limits import MAX_DELAY_SECONDS

logger = logging.getLogger("taskqueue.retry_policy")

BackoffFunction = Callable[[int, BaseException], float]
"""(attempt that failed, 1-based; the exception) -> seconds until the next attempt."""

ExceptionClasses = tuple[type[BaseException], ...]


class Rule(enum.StrEnum):
    """The rule that decided a failure's fate, as written in its event's detail."""

    PERMANENT = "permanent"
    DISCARD_ON = "discard_on"
    RETRY_ON = "retry_on"
    MAX_RETRIES = "max_retries"
    MAX_ELAPSED = "max_elapsed"
    BACKOFF_ON = "backoff_on"
    BACKOFF_FUNCTION = "backoff_function"
    BACKOFF = "backoff"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """What a task type does when an attempt fails (see the module's precedence).

    ``backoff_on`` maps an exception class to a ``Backoff`` or a fixed number
    of seconds; ``max_elapsed`` is in seconds from the task's ``created_at``."""

    retry_on: ExceptionClasses = ()
    discard_on: ExceptionClasses = ()
    max_elapsed: float | None = None
    backoff_on: tuple[tuple[type[BaseException], Backoff | float], ...] = ()
    backoff_function: BackoffFunction | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in ("retry_on", "discard_on"):
            classes = getattr(self, name)
            if not isinstance(classes, tuple) or not all(_is_exception(c) for c in classes):
                raise TypeError(f"{name}: a tuple of exception classes")
        for cls, spec in self.backoff_on:
            if not _is_exception(cls):
                raise TypeError(f"backoff_on: {cls!r} is not an exception class")
            if not isinstance(spec, Backoff) and not _seconds(spec):
                raise ValueError(f"backoff_on[{cls.__name__}]: a Backoff or seconds >= 0")
        if self.max_elapsed is not None and not (_seconds(self.max_elapsed) and self.max_elapsed):
            raise ValueError("max_elapsed: seconds > 0")
        if self.backoff_function is not None and not callable(self.backoff_function):
            raise TypeError("backoff: a Backoff or a function (attempt, exception) -> seconds")

    @classmethod
    def build(
        cls,
        *,
        retry_on: ExceptionClasses | type[BaseException] = (),
        discard_on: ExceptionClasses | type[BaseException] = (),
        max_elapsed: float | None = None,
        backoff_on: Mapping[type[BaseException], Backoff | float] | None = None,
        backoff_function: BackoffFunction | None = None,
    ) -> RetryPolicy | None:
        """A policy from ``Registry.task``'s arguments; None when none is set
        (the type keeps the plain behaviour and event details)."""
        retry = retry_on if isinstance(retry_on, tuple) else (retry_on,)
        discard = discard_on if isinstance(discard_on, tuple) else (discard_on,)
        by_class = tuple((backoff_on or {}).items())
        if not (retry or discard or max_elapsed is not None or by_class or backoff_function):
            return None
        return cls(
            retry_on=retry,
            discard_on=discard,
            max_elapsed=max_elapsed,
            backoff_on=by_class,
            backoff_function=backoff_function,
        )


class Decision(NamedTuple):
    """``retry`` False: the task fails now, whatever attempts are left."""

    retry: bool
    delay: float
    rule: Rule


def decide(
    policy: RetryPolicy,
    exc: BaseException,
    *,
    attempt: int,
    max_retries: int,
    backoff: Backoff,
) -> Decision:
    """What failed attempt ``attempt`` (1-based) of a task becomes. ``backoff``
    is the type's or the worker's; a retry the database finds past
    ``max_elapsed`` still fails (rule ``max_elapsed``)."""
    if policy.discard_on and isinstance(exc, policy.discard_on):
        return Decision(False, 0.0, Rule.DISCARD_ON)
    if policy.retry_on and not isinstance(exc, policy.retry_on):
        return Decision(False, 0.0, Rule.RETRY_ON)
    if attempt > max_retries:
        return Decision(False, 0.0, Rule.MAX_RETRIES)
    for klass in type(exc).__mro__:  # the most specific entry wins
        for cls, spec in policy.backoff_on:
            if cls is klass:
                delay = spec.delay(attempt) if isinstance(spec, Backoff) else float(spec)
                return Decision(True, delay, Rule.BACKOFF_ON)
    if policy.backoff_function is not None:
        try:
            delay = float(policy.backoff_function(attempt, exc))
        except Exception:
            logger.exception("the backoff function failed; using the Backoff instead")
        else:
            if math.isfinite(delay) and delay >= 0:
                return Decision(True, min(delay, MAX_DELAY_SECONDS), Rule.BACKOFF_FUNCTION)
            logger.error("the backoff function returned %r; using the Backoff instead", delay)
    return Decision(True, backoff.delay(attempt), Rule.BACKOFF)


def _is_exception(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, BaseException)


def _seconds(value: object) -> bool:
    return (
        type(value) in (int, float)
        and math.isfinite(value)  # type: ignore[arg-type]
        and 0 <= value <= MAX_DELAY_SECONDS  # type: ignore[operator]
    )
