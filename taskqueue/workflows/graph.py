"""Workflow graphs as values: the builder (``Workflow``), the shapes that
read naturally (``chain``, ``group``), and the checks a graph must pass
before anything is inserted (refs unique and known, no cycle, no
dependency across tenants, at most MAX_WORKFLOW_TASKS tasks). No I/O here."""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import msgspec

from taskqueue.errors import InvalidGraph, InvalidTask
from taskqueue.models import NewTask

MAX_WORKFLOW_TASKS = 10_000
MAX_REF_LENGTH = 200
OnParentFailure = Literal["cancel", "run"]
ON_PARENT_FAILURE: tuple[str, ...] = ("cancel", "run")


class Step(msgspec.Struct, frozen=True, kw_only=True):
    """One task of a workflow: its ref (unique in the workflow), the task,
    the refs it runs after, and what it does when one of them fails or is
    cancelled for good ('cancel': it is cancelled too; 'run': it runs once
    every parent has finished, and reads their outcomes)."""

    ref: str
    task: NewTask
    depends_on: tuple[str, ...] = ()
    on_parent_failure: OnParentFailure = "cancel"


class Workflow:
    """A graph of tasks inserted in one statement (``tq.workflows.submit``)::

    wf = Workflow("nightly-etl")
    raw = wf.add("extract", {"day": "2026-12-06"})
    parts = [wf.add("transform", {"part": i}, after=[raw]) for i in range(4)]
    wf.add("load", {}, after=parts)
    wf.add("report", {}, after=parts, on_parent_failure="run")
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.steps: list[Step] = []

    def add(
        self,
        type: str,
        payload: Any = None,
        *,
        ref: str | None = None,
        after: Iterable[str] = (),
        on_parent_failure: OnParentFailure = "cancel",
        **fields: Any,
    ) -> str:
        """Add a task of ``type`` (``fields``: any NewTask field, e.g. queue,
        priority, max_retries) that runs after the tasks named in ``after``;
        returns its ref (given, or made from its position)."""
        task = NewTask(type=type, payload={} if payload is None else payload, **fields)
        return self.task(task, ref=ref, after=after, on_parent_failure=on_parent_failure)

    def task(
        self,
        task: NewTask,
        *,
        ref: str | None = None,
        after: Iterable[str] = (),
        on_parent_failure: OnParentFailure = "cancel",
    ) -> str:
        """Add a NewTask as it is; returns its ref."""
        ref = f"{len(self.steps)}" if ref is None else ref
        self.steps.append(
            Step(
                ref=ref,
                task=task,
                depends_on=tuple(after),
                on_parent_failure=on_parent_failure,
            )
        )
        return ref


def chain(*tasks: NewTask, name: str = "") -> Workflow:
    """Each task runs after the one before it (a failure cancels the rest)."""
    wf = Workflow(name)
    previous: list[str] = []
    for task in tasks:
        previous = [wf.task(task, after=previous)]
    return wf


def group(
    tasks: Sequence[NewTask],
    *,
    then: NewTask | None = None,
    on_parent_failure: OnParentFailure = "cancel",
    name: str = "",
) -> Workflow:
    """The tasks run side by side; ``then`` (a callback, a chord's body) runs
    after all of them, or, with ``on_parent_failure="run"``, after all of
    them have finished whatever their outcome."""
    wf = Workflow(name)
    members = [wf.task(task) for task in tasks]
    if then is not None:
        wf.task(then, ref="then", after=members, on_parent_failure=on_parent_failure)
    return wf


def check(steps: Sequence[Step]) -> list[str]:
    """Raise InvalidGraph unless the steps form an acceptable graph; returns
    the refs in an order where every parent comes before its children."""
    if not steps:
        raise InvalidTask("tasks", "a workflow has at least one task")
    if len(steps) > MAX_WORKFLOW_TASKS:
        raise InvalidGraph(f"at most {MAX_WORKFLOW_TASKS} tasks per workflow", [])
    refs: set[str] = set()
    duplicates: set[str] = set()
    for index, step in enumerate(steps):
        ref = step.ref
        if not (type(ref) is str and 0 < len(ref) <= MAX_REF_LENGTH and ref.isprintable()):
            raise InvalidTask(
                f"tasks[{index}].ref", f"printable text of 1 to {MAX_REF_LENGTH} characters"
            )
        if step.on_parent_failure not in ON_PARENT_FAILURE:
            raise InvalidTask(f"tasks[{index}].on_parent_failure", "'cancel' or 'run'")
        (duplicates if ref in refs else refs).add(ref)
    if duplicates:
        raise InvalidGraph("duplicate refs", duplicates)
    unknown = {p for step in steps for p in step.depends_on if p not in refs}
    if unknown:
        raise InvalidGraph("depends_on names unknown refs", unknown)
    # Dependencies never cross tenants (enqueue_after's rule too).
    # (Read with getattr: a task that is no NewTask is refused by prepare().)
    tenants = {step.ref: getattr(step.task, "tenant", None) for step in steps}
    crossing = {s.ref for s in steps if any(tenants[p] != tenants[s.ref] for p in s.depends_on)}
    if crossing:
        raise InvalidGraph("depends_on names tasks of another tenant", crossing)
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for step in steps:
        sorter.add(step.ref, *step.depends_on)
    try:
        return list(sorter.static_order())
    except graphlib.CycleError as exc:
        raise InvalidGraph("the dependencies form a cycle", exc.args[1]) from None
