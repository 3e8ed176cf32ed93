"""Handler middleware: code that runs around handlers, for every type of a
registry (``registry.use(mw)``) or for one (``@registry.task(...,
middleware=[mw])``).

A middleware is ``async def mw(ctx, payload, call_next)``: it may look at or
replace the payload, call ``await call_next(ctx, payload)`` (or not), and
return its result, another result, or raise. What escapes the outermost one
is the attempt's outcome, exactly as if the handler had done it: a value
succeeds, ``Permanent`` fails the task now, ``Snooze`` puts it back for
later, any other exception is a retried failure. Order: the registry's
middleware in the order ``use`` added it, the first outermost, then the
type's own in list order, then the handler.

Timeouts and lease deadlines cut the whole chain short (as a cancellation:
catch ``Exception``, never ``BaseException``, to leave it alone). A registry
without middleware runs its handlers directly: nothing is added per task.

The ones here are examples to start from: ``log_execution``,
``report_errors`` and ``permanent_on``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from taskqueue.errors import Permanent, Snooze
from taskqueue.registry import Middleware, Next, TaskContext

logger = logging.getLogger("taskqueue.task")


async def log_execution(ctx: TaskContext, payload: Any, call_next: Next) -> Any:
    """One line when the handler starts and one when it ends, with how long
    it took (INFO; task fields are on both, as on every record in a task)."""
    logger.info("started %s, attempt %d", ctx.type, ctx.attempt)
    started = time.perf_counter()
    try:
        result = await call_next(ctx, payload)
    except Exception as exc:
        took = (time.perf_counter() - started) * 1000
        logger.info("%s ended after %.1f ms: %s", ctx.type, took, type(exc).__name__)
        raise
    logger.info("%s succeeded in %.1f ms", ctx.type, (time.perf_counter() - started) * 1000)
    return result


def report_errors(
    report: Callable[[BaseException, TaskContext], object],
) -> Middleware:
    """Call ``report(exc, ctx)`` for every exception a handler raises (your
    error tracker: Sentry's ``capture_exception``, say), then let it take its
    course. ``Snooze`` is not an error and is not reported; a ``report``
    that fails is logged, never allowed to change the outcome."""

    async def reporting(ctx: TaskContext, payload: Any, call_next: Next) -> Any:
        try:
            return await call_next(ctx, payload)
        except Snooze:
            raise
        except Exception as exc:
            try:
                report(exc, ctx)
            except Exception:
                logger.exception("reporting an error of task %s failed", ctx.task_id)
            raise

    return reporting


def permanent_on(*errors: type[Exception]) -> Middleware:
    """Turn the given exceptions into ``Permanent``: the task fails at once
    instead of being retried (a record that does not exist will not appear
    on the next attempt)."""

    async def no_retry(ctx: TaskContext, payload: Any, call_next: Next) -> Any:
        try:
            return await call_next(ctx, payload)
        except errors as exc:
            raise Permanent(f"{type(exc).__name__}: {exc}") from exc

    return no_retry
